// The conversation list: last message, unread badge, presence of direct peers; and
// message search across the caller's conversations.

import { api, query } from '../api.js';
import { avatar, describeError, h, presenceDot, shortTime } from '../dom.js';
import { bus, conversationTitle, displayName, isMe, isOnline, sortedConversations, state, summaryText, unread, unreadMentions } from '../store.js';

export function conversationList() {
  const list = h('ul', { class: 'conversations', 'data-testid': 'conversations' });
  const empty = h('p', { class: 'empty' }, 'No conversations yet. Add a friend or join a group to start chatting.');
  const searchInput = h('input', { type: 'search', name: 'q', placeholder: 'Search messages', 'aria-label': 'Search messages', minlength: '2', maxlength: '100', 'data-testid': 'message-search' });
  const searchForm = h('form', { class: 'search-form', role: 'search' }, searchInput);
  const results = h('ul', { class: 'search-results', 'data-testid': 'search-results', hidden: true });
  const el = h('div', { class: 'conversation-list' }, h('h2', { class: 'pane-title' }, 'Chats'), searchForm, results, list, empty);
  let selected = null;

  // Results replace the list while a search is shown; clearing the box brings it back.
  searchForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = searchInput.value.trim();
    if (q.length < 2) return;
    try {
      const page = await api('GET', `/messages/search${query({ q, limit: 30 })}`);
      showResults(page.items);
    } catch (err) {
      results.replaceChildren(h('li', { class: 'empty', role: 'alert', text: describeError(err) }));
      results.hidden = false;
    }
  });
  searchInput.addEventListener('input', () => {
    if (!searchInput.value.trim()) {
      results.hidden = true;
      list.hidden = false;
    }
  });

  function showResults(items) {
    results.replaceChildren(
      ...items.map((m) => {
        const conversation = state.conversations.get(m.conversation_id);
        const who = isMe(m.sender_id) ? 'You' : displayName(m.sender_id);
        return h(
          'li',
          {},
          h(
            'a',
            { href: `#/chats/${m.conversation_id}/m/${m.seq}`, class: 'conversation', 'data-testid': 'search-result' },
            h(
              'span',
              { class: 'summary' },
              h('span', { class: 'title-row' }, h('span', { class: 'title', text: conversation ? conversationTitle(conversation) : `#${m.conversation_id}` }), h('time', { class: 'when', text: shortTime(m.created_at) })),
              h('span', { class: 'preview-row' }, h('span', { class: 'preview', text: `${who}: ${summaryText(m)}` })),
            ),
          ),
        );
      }),
    );
    if (!items.length) results.append(h('li', { class: 'empty', text: 'No messages found.' }));
    results.hidden = false;
    list.hidden = true;
    empty.hidden = true;
  }

  function render() {
    const items = sortedConversations();
    empty.hidden = items.length > 0 || !state.conversationsLoaded;
    list.replaceChildren(...items.map(item));
  }

  function item(conversation) {
    const count = unread(conversation);
    const mentions = unreadMentions(conversation);
    const peer = conversation.peer;
    const last = conversation.last_message;
    let preview = '';
    if (last) {
      const who = isMe(last.sender_id) ? 'You' : conversation.kind === 'group' ? displayName(last.sender_id) : '';
      const text = summaryText(last);
      preview = who ? `${who}: ${text}` : text;
    }
    const picture = peer ? avatar(peer) : avatar({ nickname: conversation.group_name, avatar_url: conversation.group_avatar_url });
    return h(
      'li',
      {},
      h(
        'a',
        {
          href: `#/chats/${conversation.id}`,
          class: `conversation${conversation.id === selected ? ' selected' : ''}${count ? ' has-unread' : ''}${mentions ? ' has-mention' : ''}`,
          'data-testid': `conversation-${conversation.id}`,
          'data-conversation-id': String(conversation.id),
          'aria-current': conversation.id === selected ? 'true' : null,
        },
        h('span', { class: 'picture' }, picture, peer ? presenceDot(isOnline(peer.id)) : null),
        h(
          'span',
          { class: 'summary' },
          h('span', { class: 'title-row' }, h('span', { class: 'title', text: conversationTitle(conversation) }), h('time', { class: 'when', text: last ? shortTime(last.created_at) : '' })),
          h('span', { class: 'preview-row' }, h('span', { class: 'preview', text: preview }),
            // "@" beside the count: some of the unread messages name you.
            mentions
              ? h('span', { class: 'badge mention-badge', 'data-testid': 'mention-badge', title: `${mentions} unread mention${mentions === 1 ? '' : 's'}`, 'aria-label': `${mentions} unread mention${mentions === 1 ? '' : 's'}`, text: '@' })
              : null,
            count ? h('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': `${count} unread`, text: count > 99 ? '99+' : String(count) }) : null),
        ),
      ),
    );
  }

  const offs = ['conversations', 'presence', 'users'].map((type) => bus.on(type, render));
  render();
  return {
    el,
    select(id) {
      selected = id;
      render();
    },
    destroy() {
      offs.forEach((off) => off());
    },
  };
}
