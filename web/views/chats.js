// The conversation list: last message, unread badge, presence of direct peers.

import { avatar, h, presenceDot, shortTime } from '../dom.js';
import { bus, conversationTitle, displayName, isMe, isOnline, sortedConversations, state, unread } from '../store.js';

export function conversationList() {
  const list = h('ul', { class: 'conversations', 'data-testid': 'conversations' });
  const empty = h('p', { class: 'empty' }, 'No conversations yet. Add a friend or join a group to start chatting.');
  const el = h('div', { class: 'conversation-list' }, h('h2', { class: 'pane-title' }, 'Chats'), list, empty);
  let selected = null;

  function render() {
    const items = sortedConversations();
    empty.hidden = items.length > 0 || !state.conversationsLoaded;
    list.replaceChildren(...items.map(item));
  }

  function item(conversation) {
    const count = unread(conversation);
    const peer = conversation.peer;
    const last = conversation.last_message;
    let preview = '';
    if (last) {
      const who = isMe(last.sender_id) ? 'You' : conversation.kind === 'group' ? displayName(last.sender_id) : '';
      const text = last.deleted ? 'Message recalled' : last.body ?? `[${last.kind}]`;
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
          class: `conversation${conversation.id === selected ? ' selected' : ''}${count ? ' has-unread' : ''}`,
          'data-testid': `conversation-${conversation.id}`,
          'data-conversation-id': String(conversation.id),
          'aria-current': conversation.id === selected ? 'true' : null,
        },
        h('span', { class: 'picture' }, picture, peer ? presenceDot(isOnline(peer.id)) : null),
        h(
          'span',
          { class: 'summary' },
          h('span', { class: 'title-row' }, h('span', { class: 'title', text: conversationTitle(conversation) }), h('time', { class: 'when', text: last ? shortTime(last.created_at) : '' })),
          h('span', { class: 'preview-row' }, h('span', { class: 'preview', text: preview }), count ? h('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': `${count} unread`, text: count > 99 ? '99+' : String(count) }) : null),
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
