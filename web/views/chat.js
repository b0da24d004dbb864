// One conversation: history that loads older pages as you scroll up, the composer
// (Enter sends, Shift+Enter breaks the line), pending/failed states with retry,
// replies, edits, recalls, typing and read receipts; images and files (attached, pasted
// or dropped; uploaded with progress, shown inline or as a download); in a group,
// @mentions, the senders' pictures, and a composer that says why it is closed (muted,
// removed, disbanded).

import { avatar, describeError, h, presenceDot, shortTime } from '../dom.js';
import { download, fitted, humanSize, openLightbox, thumbnailUrl, uploadErrorText } from '../media.js';
import {
  bus,
  chat as chatState,
  discard,
  closeChat,
  conversationTitle,
  deliveredTo,
  displayName,
  editMessage,
  groupInfo,
  isMe,
  isMutedMember,
  isOnline,
  loadOlder,
  markRead,
  mentionsMe,
  openChat,
  readers,
  recallMessage,
  retry,
  sendFile,
  sendMessage,
  setConversationMuted,
  setTyping,
  state,
  summaryText,
  timeline,
  toggleReaction,
  typists,
} from '../store.js';
import { mentionPicker } from './mentions.js';

/** The reactions offered in a message's picker; any one emoji works through the API. */
const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉'];

export function chatView(root, id, focusSeq = null) {
  const title = h('h2', { class: 'chat-title', 'data-testid': 'chat-title' });
  const subtitle = h('p', { class: 'chat-subtitle', 'data-testid': 'chat-subtitle' });
  const headPicture = h('span', { class: 'picture' });
  const infoLink = h('a', { class: 'ghost small', hidden: true }, 'Group info');
  const muteButton = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'mute-toggle', onclick: () => toggleMute() });
  const olderButton = h('button', { type: 'button', class: 'load-older ghost small', 'data-testid': 'load-older', onclick: () => older() }, 'Load earlier messages');
  const list = h('ol', { class: 'message-list', 'data-testid': 'messages', 'aria-live': 'polite' });
  const scroller = h('div', { class: 'messages', tabindex: '0', 'aria-label': 'Messages' }, olderButton, list);
  const jumpButton = h('button', { type: 'button', class: 'jump-latest', 'data-testid': 'jump-latest', hidden: true, onclick: () => jumpToLatest() });
  const typingLine = h('p', { class: 'typing', 'data-testid': 'typing', 'aria-live': 'polite' });
  const banner = h('div', { class: 'composer-banner', hidden: true });
  const input = h('textarea', {
    class: 'composer-input',
    rows: '1',
    placeholder: 'Write a message…',
    'aria-label': 'Message',
    'data-testid': 'composer',
    maxlength: '16384',
  });
  const sendButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 'send' }, 'Send');
  const fileInput = h('input', { type: 'file', multiple: true, class: 'visually-hidden', tabindex: '-1', 'aria-hidden': 'true', 'data-testid': 'attach-input' });
  const attachButton = h(
    'button',
    { type: 'button', class: 'attach ghost', title: 'Attach images or files', 'aria-label': 'Attach images or files', 'data-testid': 'attach', onclick: () => fileInput.click() },
    icon(PAPERCLIP),
  );
  const dropHint = h('div', { class: 'drop-hint', 'data-testid': 'drop-hint', 'aria-hidden': 'true' }, h('span', {}, 'Drop to send'));
  const composerError = h('p', { class: 'notice error', role: 'alert', hidden: true });
  const locked = h('p', { class: 'composer-locked', role: 'status', 'data-testid': 'composer-locked', hidden: true });
  const mentions = mentionPicker(input, mentionCandidates);
  const composer = h('form', { class: 'composer' }, mentions.el, banner, composerError, locked, h('div', { class: 'composer-row' }, attachButton, fileInput, input, sendButton));
  const view = h(
    'section',
    { class: 'chat', 'data-testid': 'chat', 'data-conversation-id': String(id) },
    h('header', { class: 'chat-head' }, h('a', { href: '#/chats', class: 'back', 'aria-label': 'Back to conversations' }, '‹'), headPicture, h('div', { class: 'chat-heading' }, title, subtitle), muteButton, infoLink),
    h('div', { class: 'messages-wrap' }, scroller, jumpButton, dropHint),
    typingLine,
    composer,
  );
  root.replaceChildren(view);

  /** What the composer does on submit: a reply target or an edit in progress. */
  let replyTo = null;
  let editing = null;
  let loadingOlder = false;
  let opened = false;
  const rendered = new Map(); // key → { node, signature }
  /** The first message unread when the chat was opened: the "New messages" line goes above it. */
  const opening = state.conversations.get(id);
  const firstUnread = opening && opening.last_seq > opening.last_read_seq ? opening.last_read_seq + 1 : null;
  /** The newest seq the user has seen at the bottom; newer ones arriving above it offer a jump. */
  let seenSeq = opening ? opening.last_seq : 0;

  // ---- header ---------------------------------------------------------------------
  function renderHead() {
    const conversation = state.conversations.get(id);
    if (!conversation) {
      title.textContent = state.conversationsLoaded ? 'Conversation not found' : 'Loading…';
      return;
    }
    title.textContent = conversationTitle(conversation);
    if (conversation.peer) {
      headPicture.replaceChildren(avatar(conversation.peer), presenceDot(isOnline(conversation.peer.id)));
    } else {
      headPicture.replaceChildren(avatar({ nickname: conversation.group_name, avatar_url: conversation.group_avatar_url }));
    }
    muteButton.textContent = conversation.muted ? 'Unmute' : 'Mute';
    muteButton.setAttribute('aria-pressed', String(Boolean(conversation.muted)));
    muteButton.title = conversation.muted ? 'Count its messages as unread again' : 'Keep its messages out of the unread count';
    infoLink.hidden = !conversation.group_id;
    if (conversation.group_id) infoLink.href = `#/groups/${conversation.group_id}`;
    renderSubtitle();
  }

  function renderSubtitle() {
    const conversation = state.conversations.get(id);
    if (!conversation) return;
    if (conversation.peer) {
      const presence = state.presence.get(conversation.peer.id);
      subtitle.textContent = presence && presence.online ? 'online' : presence && presence.last_seen_at ? `last seen ${shortTime(presence.last_seen_at)}` : `@${conversation.peer.username}`;
    } else {
      const info = conversation.group_id && groupInfo(conversation.group_id);
      const group = info && info.group;
      subtitle.textContent = group ? `${group.member_count} member${group.member_count === 1 ? '' : 's'}${group.disbanded_at ? ' · disbanded' : ''}` : 'Group chat';
    }
    renderLock();
  }

  /** The group's other members, for @mentions. */
  function mentionCandidates() {
    const conversation = state.conversations.get(id);
    const info = conversation && conversation.group_id && groupInfo(conversation.group_id);
    if (!info) return [];
    return info.members.filter((member) => !isMe(member.user.id)).map((member) => member.user);
  }

  /** Closes the composer, saying why, when this group no longer takes the user's messages. */
  function renderLock() {
    const conversation = state.conversations.get(id);
    const info = conversation && conversation.group_id && groupInfo(conversation.group_id);
    let reason = '';
    if (info && (!info.group || !info.group.my_role)) reason = 'You are no longer a member of this group.';
    else if (info && info.group.disbanded_at) reason = 'This group was disbanded.';
    else if (info) {
      const me = info.members.find((member) => isMe(member.user.id));
      if (isMutedMember(me)) reason = `An admin muted you until ${new Date(me.muted_until).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}.`;
    }
    locked.hidden = !reason;
    locked.textContent = reason;
    input.disabled = sendButton.disabled = attachButton.disabled = Boolean(reason);
    clearTimeout(renderLock.timer);
    // A mute ends on its own: open the composer again then.
    const me = info && info.members.find((member) => isMe(member.user.id));
    if (isMutedMember(me)) renderLock.timer = setTimeout(renderLock, Math.min(new Date(me.muted_until) - Date.now() + 500, 2 ** 31 - 1));
  }

  function renderTyping() {
    const names = typists(id).map(displayName);
    typingLine.textContent =
      names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : 'Several people are typing…';
  }

  // ---- messages -------------------------------------------------------------------
  function renderMessages() {
    const { stored, pending } = timeline(id);
    const chat = chatState(id);
    olderButton.hidden = !chat.loaded || !chat.hasOlder;
    const conversation = state.conversations.get(id);
    const group = conversation && conversation.kind === 'group';
    const lastOwn = [...stored].reverse().find((m) => isMe(m.sender_id) && !m.deleted);
    const bySeq = chat.messages;
    const messages = [
      ...stored.map((m) => ({ key: `s${m.seq}`, message: m, status: 'sent' })),
      ...pending.map((m) => ({ key: `p${m.client_msg_id}`, message: m, status: m.status })),
    ];
    // A separator above the first message of each day.
    const entries = [];
    let lastDay = null;
    const markerSeq = firstUnread === null ? null : stored.find((m) => m.seq >= firstUnread && !isMe(m.sender_id))?.seq;
    for (const entry of messages) {
      const day = dayOf(entry.message.created_at);
      if (day.key !== lastDay) entries.push({ key: `d${day.key}`, day: day.label });
      lastDay = day.key;
      if (entry.status === 'sent' && entry.message.seq === markerSeq) entries.push({ key: 'unread', marker: true });
      entries.push(entry);
    }

    // Keep the view steady: stay at the bottom if we were there, else keep the first
    // visible message where it was (older pages are inserted above it).
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    const anchor = [...list.children].find((node) => node.offsetTop + node.offsetHeight > scroller.scrollTop);
    const anchorOffset = anchor ? anchor.offsetTop - scroller.scrollTop : 0;

    const keep = new Set();
    let previous = null;
    for (const entry of entries) {
      keep.add(entry.key);
      if (entry.day || entry.marker) {
        let current = rendered.get(entry.key);
        if (!current || current.signature !== (entry.day || 'marker')) {
          const node = entry.marker
            ? h('li', { class: 'unread-marker', role: 'separator', 'data-testid': 'unread-marker', 'aria-label': 'New messages' }, h('span', {}, 'New messages'))
            : h('li', { class: 'day-separator', role: 'separator', 'data-testid': 'day-separator', text: entry.day });
          if (current) current.node.replaceWith(node);
          current = { node, signature: entry.day || 'marker' };
          rendered.set(entry.key, current);
        }
        const expectedAfter = previous ? previous.nextSibling : list.firstChild;
        if (expectedAfter !== current.node) list.insertBefore(current.node, expectedAfter);
        previous = current.node;
        continue;
      }
      const receipt = entry.status === 'sent' && isMe(entry.message.sender_id) ? receiptText(entry.message, group, entry.message === lastOwn) : '';
      const reply = entry.message.reply_to_seq ? bySeq.get(entry.message.reply_to_seq) : null;
      const signature = JSON.stringify([
        entry.status,
        entry.message.version,
        entry.message.body,
        entry.message.deleted,
        entry.message.edited_at,
        entry.message.reactions,
        entry.message.error && entry.message.error.message,
        entry.message.kind,
        entry.message.content && [entry.message.content.upload_id, entry.message.content.name],
        entry.status === 'uploading' && Math.floor((entry.message.progress || 0) * 100),
        receipt,
        displayName(entry.message.sender_id),
        group && (state.users.get(entry.message.sender_id) || {}).avatar_url,
        (entry.message.mentions || []).map(displayName),
        entry.message.mention_all,
        reply && [reply.body, reply.deleted, reply.kind],
        entry.message === lastOwn,
      ]);
      let current = rendered.get(entry.key);
      if (!current || current.signature !== signature) {
        const node = messageNode(entry, { group, receipt, reply, lastOwn: entry.message === lastOwn });
        if (current) {
          // A toolbar opened by a tap stays open through a re-render (a receipt, a reaction).
          if (current.node.classList.contains('actions-open')) node.classList.add('actions-open');
          current.node.replaceWith(node);
        }
        current = { node, signature };
        rendered.set(entry.key, current);
      }
      const expectedAfter = previous ? previous.nextSibling : list.firstChild;
      if (expectedAfter !== current.node) list.insertBefore(current.node, expectedAfter);
      previous = current.node;
    }
    for (const [key, value] of rendered) {
      if (!keep.has(key)) {
        value.node.remove();
        rendered.delete(key);
      }
    }

    if (atBottom || !opened) scroller.scrollTop = scroller.scrollHeight;
    else if (anchor && anchor.isConnected) scroller.scrollTop = anchor.offsetTop - anchorOffset;
    renderJump();
  }

  function isAtBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  }

  /** "2 new messages ↓" while the user reads further up and others write. */
  function renderJump() {
    const { stored } = timeline(id);
    const newest = stored.length ? stored[stored.length - 1].seq : 0;
    if (isAtBottom() || !opened) {
      seenSeq = Math.max(seenSeq, newest);
      jumpButton.hidden = true;
      return;
    }
    const fresh = stored.filter((m) => m.seq > seenSeq && !isMe(m.sender_id) && !m.deleted).length;
    jumpButton.hidden = fresh === 0;
    jumpButton.textContent = `${fresh} new message${fresh === 1 ? '' : 's'} ↓`;
    jumpButton.setAttribute('aria-label', `Jump to the latest message (${fresh} new)`);
  }

  function jumpToLatest() {
    scroller.scrollTop = scroller.scrollHeight;
    renderJump();
    markRead(id);
    input.focus();
  }

  /** The local calendar day of `when` (now for a message not yet stored), and its label. */
  function dayOf(when) {
    const date = when ? new Date(when) : new Date();
    const key = date.toDateString();
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (key === today.toDateString()) return { key, label: 'Today' };
    if (key === yesterday.toDateString()) return { key, label: 'Yesterday' };
    const options = { weekday: 'long', month: 'long', day: 'numeric' };
    if (date.getFullYear() !== today.getFullYear()) options.year = 'numeric';
    return { key, label: date.toLocaleDateString([], options) };
  }

  function receiptText(message, group, isLastOwn) {
    const read = readers(id, message.seq);
    if (group) return read.length ? `Read by ${read.length}` : isLastOwn ? 'Sent' : '';
    if (read.length) return 'Read';
    if (deliveredTo(id, message.seq).length) return 'Delivered';
    return 'Sent';
  }

  function messageNode(entry, { group, receipt, reply, lastOwn }) {
    const m = entry.message;
    const mine = isMe(m.sender_id);
    const classes = ['message', mine ? 'mine' : 'theirs', entry.status];
    if (m.deleted) classes.push('deleted');
    if (lastOwn) classes.push('last-own');
    const mentioned = entry.status === 'sent' && mentionsMe(m);
    if (mentioned) classes.push('mentioned');
    const picture = group && !mine;
    if (picture) classes.push('with-picture');
    const meta = h(
      'div',
      { class: 'meta' },
      group && !mine ? h('span', { class: 'author', text: displayName(m.sender_id) }) : null,
      h('time', { datetime: m.created_at, title: new Date(m.created_at).toLocaleString(), text: shortTime(m.created_at) }),
      m.edited_at && !m.deleted ? h('span', { class: 'edited', 'data-testid': 'edited' }, 'edited') : null,
    );
    let quote = null;
    if (m.reply_to_seq) {
      const text = reply ? summaryText(reply) : `message #${m.reply_to_seq}`;
      const who = reply ? (isMe(reply.sender_id) ? 'You' : displayName(reply.sender_id)) : '';
      quote = h('blockquote', { class: 'reply-quote', 'data-testid': 'reply-quote' }, who ? h('strong', { text: `${who}: ` }) : null, h('span', { text: text.slice(0, 140) }));
    }
    const media = !m.deleted && (m.kind === 'image' || m.kind === 'file') && m.content;
    const body = m.deleted
      ? h('p', { class: 'body recalled', 'data-testid': 'message-body' }, 'Message recalled')
      : media
        ? h('div', { class: 'body media', 'data-testid': 'message-body' }, mediaContent(m, entry))
        : h('p', { class: 'body', 'data-testid': 'message-body' }, contentOf(m));
    const reactable = entry.status === 'sent' && !m.deleted;
    const chip = (r) =>
      h('button', {
        type: 'button',
        class: `reaction${r.me ? ' me' : ''}`,
        'data-testid': `reaction-${r.emoji}`,
        'aria-pressed': String(Boolean(r.me)),
        title: r.me ? 'Take back your reaction' : 'React with this too',
        disabled: !reactable,
        text: `${r.emoji} ${r.count}`,
        onclick: () => react(m, r.emoji, r.me),
      });
    const reactions = (m.reactions || []).length ? h('div', { class: 'reactions' }, ...m.reactions.map(chip)) : null;
    let status = null;
    if (entry.status === 'pending') status = h('span', { class: 'status', 'data-testid': 'message-status' }, 'Sending…');
    else if (entry.status === 'uploading') {
      const percent = Math.floor((m.progress || 0) * 100);
      status = h('span', { class: 'status', 'data-testid': 'message-status' }, percent > 0 ? `Uploading… ${percent}%` : 'Uploading…');
    } else if (entry.status === 'failed' && m.uploadFailed) {
      // Too large, over the quota or refused: trying the same bytes again cannot help.
      const again = m.transient || !(m.error && (m.error.status === 413 || m.error.status === 400));
      status = h(
        'span',
        { class: 'status failed', 'data-testid': 'message-status', role: 'alert' },
        h('span', { text: `Not sent: ${uploadErrorText(m.error)}` }),
        again ? h('button', { type: 'button', class: 'link', 'data-testid': 'retry', onclick: () => retry(id, m.client_msg_id) }, 'Retry') : null,
        h('button', { type: 'button', class: 'link', 'data-testid': 'discard', onclick: () => discard(id, m.client_msg_id) }, 'Remove'),
      );
    } else if (entry.status === 'failed') {
      status = h(
        'span',
        { class: 'status failed', 'data-testid': 'message-status' },
        h('span', { text: `Not sent: ${describeError(m.error)}` }),
        h('button', { type: 'button', class: 'link', 'data-testid': 'retry', onclick: () => retry(id, m.client_msg_id) }, 'Retry'),
      );
    } else if (receipt) status = h('span', { class: 'status', 'data-testid': 'receipt', text: receipt });
    const actions =
      entry.status === 'sent' && !m.deleted
        ? h(
            'div',
            { class: 'actions', role: 'toolbar', 'aria-label': 'Message actions', 'data-testid': 'message-actions' },
            h('button', { type: 'button', class: 'link', 'data-action': 'reply', onclick: () => startReply(m) }, 'Reply'),
            h('button', { type: 'button', class: 'link', 'data-action': 'react', onclick: (event) => openPicker(event.currentTarget, m) }, 'React'),
            mine && m.kind === 'text' ? h('button', { type: 'button', class: 'link', 'data-action': 'edit', onclick: () => startEdit(m) }, 'Edit') : null,
            mine ? h('button', { type: 'button', class: 'link', 'data-action': 'recall', onclick: () => recall(m) }, 'Recall') : null,
          )
        : null;
    const bubble = h('div', { class: 'bubble' }, mentioned ? h('span', { class: 'visually-hidden' }, 'Mentions you. ') : null, meta, quote, body, reactions);
    const below = h('div', { class: 'below' }, status, actions);
    const sender = state.users.get(m.sender_id) || { id: m.sender_id, nickname: displayName(m.sender_id) };
    return h(
      'li',
      {
        class: classes.join(' '),
        'data-testid': 'message',
        'data-seq': m.seq ? String(m.seq) : null,
        'data-client-msg-id': m.client_msg_id,
        'data-status': entry.status,
        'data-mentioned': mentioned ? 'true' : null,
      },
      picture ? [h('span', { class: 'sender-picture', title: displayName(m.sender_id) }, avatar(sender, 'sm')), h('div', { class: 'message-column' }, bubble, below)] : [bubble, below],
    );
  }

  function contentOf(m) {
    if (m.kind === 'text' || !m.content) return withMentions(m.body ?? '', m);
    if (m.kind === 'link') return linkContent(m);
    const url = m.content.url;
    const label = m.kind === 'file' ? m.content.name || 'file' : m.kind === 'link' ? m.content.title || url : 'image';
    const parts = [];
    if (typeof url === 'string' && /^https?:\/\//i.test(url)) parts.push(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow', text: `[${m.kind}] ${label}` }));
    else parts.push(`[${m.kind}]`);
    if (m.body) parts.push(h('br'), linkified(m.body));
    return parts;
  }

  /**
   * An image (its thumbnail, sized before it arrives so nothing jumps; opens the full
   * image) or a file (icon, name, size and a Download button), then the caption.
   */
  function mediaContent(m, entry) {
    const c = m.content;
    const name = c.name || (m.kind === 'image' ? 'Image' : 'File');
    const stored = entry.status === 'sent' && typeof c.upload_id === 'string';
    const uploading = entry.status === 'uploading';
    let main;
    if (m.kind === 'image') {
      const sized = c.width > 0 && c.height > 0;
      const box = sized ? fitted(c.width, c.height) : null;
      const img = h('img', {
        class: `media-thumb${sized ? '' : ' unsized'}`,
        alt: name,
        width: box ? String(box.width) : null,
        height: box ? String(box.height) : null,
        'data-testid': 'message-image',
        draggable: 'false',
      });
      if (stored) {
        thumbnailUrl(c.upload_id)
          .then((url) => (img.src = url))
          .catch(() => img.replaceWith(h('span', { class: 'media-missing', 'data-testid': 'image-missing', text: 'The image cannot be shown.' })));
        main = h('button', { type: 'button', class: 'media-open', 'aria-label': `Open image ${name}`, 'data-testid': 'open-image', onclick: () => openLightbox(c) }, img);
      } else {
        if (m.preview) img.src = m.preview;
        main = h('span', { class: 'media-open pending' }, img);
      }
    } else {
      const button = stored
        ? h('button', {
            type: 'button',
            class: 'small file-download',
            'data-testid': 'download',
            'aria-label': `Download ${name}`,
            text: 'Download',
            onclick: async () => {
              button.disabled = true;
              button.textContent = 'Downloading…';
              try {
                await download(c);
              } catch (err) {
                showError(err);
              } finally {
                button.disabled = false;
                button.textContent = 'Download';
              }
            },
          })
        : null;
      main = h(
        'span',
        { class: 'file-card', 'data-testid': 'file-card' },
        h('span', { class: 'file-icon', 'aria-hidden': 'true' }, icon(DOCUMENT)),
        h('span', { class: 'file-info' }, h('span', { class: 'file-name', 'data-testid': 'file-name', title: name, text: name }), h('span', { class: 'file-size', 'data-testid': 'file-size', text: humanSize(c.size) })),
        button,
      );
    }
    const progress = uploading ? h('progress', { class: 'upload-progress', max: '1', value: m.progress || 0, 'aria-label': `Uploading ${name}` }) : null;
    const caption = m.body ? h('p', { class: 'caption', 'data-testid': 'caption' }, withMentions(m.body, m)) : null;
    return [main, progress, caption];
  }

  /** A shared link: its title (when it has one), the URL itself, the description, then the caption. */
  function linkContent(m) {
    const { url, title, description } = m.content;
    if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return ['[link]', m.body ? [h('br'), linkified(m.body)] : null];
    const link = { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' };
    return [
      h(
        'span',
        { class: 'link-card', 'data-testid': 'link-card' },
        title ? h('a', { ...link, class: 'link-title', text: title }) : null,
        h('a', { ...link, class: 'link-url', 'data-testid': 'link-url', text: url }),
        description ? h('span', { class: 'link-description', text: description }) : null,
      ),
      m.body ? linkified(m.body) : null,
    ];
  }

  /** Text with the `@names` of the users it mentions marked (the user's own stronger). */
  function withMentions(text, m) {
    const names = new Map();
    for (const userId of m.mentions || []) {
      const user = state.users.get(userId);
      if (!user) continue;
      for (const name of [user.nickname, user.username]) if (name) names.set(`@${name}`.toLowerCase(), userId);
    }
    if (!names.size) return linkified(text);
    const escaped = [...names.keys()].sort((a, b) => b.length - a.length).map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(new RegExp(escaped.join('|'), 'giu'))) {
      parts.push(linkified(text.slice(last, match.index)));
      const userId = names.get(match[0].toLowerCase());
      parts.push(h('span', { class: `mention${isMe(userId) ? ' me' : ''}`, 'data-testid': 'mention', text: match[0] }));
      last = match.index + match[0].length;
    }
    parts.push(linkified(text.slice(last)));
    return parts;
  }

  /** Text with its http(s) URLs as links that open apart from the app; the rest stays text. */
  function linkified(text) {
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(/https?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]'"]/gi)) {
      parts.push(text.slice(last, match.index));
      parts.push(h('a', { href: match[0], target: '_blank', rel: 'noopener noreferrer nofollow', 'data-testid': 'message-link', text: match[0] }));
      last = match.index + match[0].length;
    }
    parts.push(text.slice(last));
    return parts;
  }

  async function toggleMute() {
    const conversation = state.conversations.get(id);
    if (!conversation) return;
    try {
      await setConversationMuted(id, !conversation.muted);
    } catch (err) {
      showError(err);
    }
  }

  /** Shows message `seq` (a search result), loading older pages until it is there. */
  async function focusMessage(seq) {
    for (let page = 0; page < 40 && !chatState(id).messages.has(seq) && chatState(id).hasOlder; page++) {
      await loadOlder(id);
    }
    renderMessages();
    const node = list.querySelector(`[data-seq="${seq}"]`);
    if (!node) return;
    node.classList.add('focused');
    node.scrollIntoView({ block: 'center' });
  }

  async function older() {
    if (loadingOlder) return;
    loadingOlder = true;
    olderButton.disabled = true;
    try {
      await loadOlder(id);
    } catch (err) {
      showError(err);
    } finally {
      loadingOlder = false;
      olderButton.disabled = false;
    }
  }

  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < 60 && chatState(id).hasOlder && chatState(id).loaded) older();
    if (isAtBottom()) markRead(id);
    renderJump();
  });

  // ---- message actions ------------------------------------------------------------
  // Reply / React / Edit / Recall stay out of sight until wanted: shown on hover where
  // there is a mouse (CSS), on focus for the keyboard (CSS :focus-within; Escape hides
  // them), and on touch screens by a tap on the bubble or a long press (the class
  // `actions-open`; a tap anywhere else closes them).
  const LONG_PRESS_MS = 500;
  let press = null;
  let swallowClick = false;

  function openActions(node) {
    closeActions(node);
    node.classList.add('actions-open');
  }

  /** Closes every open toolbar (and its reaction picker) but `except`'s. */
  function closeActions(except = null) {
    for (const node of list.querySelectorAll('.message.actions-open')) {
      if (node === except) continue;
      node.classList.remove('actions-open');
      node.querySelector('.reaction-picker')?.remove();
    }
  }

  /** A message that offers actions, under the pointer of `event`, outside its toolbar. */
  function messageWithActions(event) {
    const node = event.target.closest && event.target.closest('.message');
    return node && list.contains(node) && node.querySelector('.actions') && !event.target.closest('.actions') ? node : null;
  }

  const canHover = () => matchMedia('(hover: hover)').matches;

  list.addEventListener('pointerdown', (event) => {
    const node = event.pointerType !== 'mouse' && messageWithActions(event);
    if (!node) return;
    const timer = setTimeout(() => {
      press = null;
      swallowClick = true;
      openActions(node);
    }, LONG_PRESS_MS);
    press = { timer, x: event.clientX, y: event.clientY };
  });
  const endPress = () => {
    if (press) clearTimeout(press.timer);
    press = null;
  };
  list.addEventListener('pointermove', (event) => {
    if (press && Math.hypot(event.clientX - press.x, event.clientY - press.y) > 10) endPress();
  });
  list.addEventListener('pointerup', endPress);
  list.addEventListener('pointercancel', endPress);
  list.addEventListener('contextmenu', (event) => {
    // The long press opened the toolbar; no context menu on top of it.
    if (swallowClick || press) event.preventDefault();
  });

  function onDocumentClick(event) {
    if (swallowClick) {
      // The click that ends a long press: the toolbar stays, a link under it stays shut.
      swallowClick = false;
      if (list.contains(event.target)) {
        event.preventDefault();
        return;
      }
    }
    const action = event.target.closest && event.target.closest('.actions [data-action], .reaction-picker button');
    if (action) {
      // Done with the toolbar once an action ran (React opens the picker and stays).
      if (action.dataset.action !== 'react') closeActions();
      return;
    }
    const node = messageWithActions(event);
    const tap = event.pointerType === 'touch' || event.pointerType === 'pen' || !canHover();
    if (node && tap && event.target.closest('.bubble') && !event.target.closest('a, button')) {
      if (node.classList.contains('actions-open')) closeActions();
      else openActions(node);
      return;
    }
    closeActions();
  }
  document.addEventListener('click', onDocumentClick, true);

  view.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const node = event.target.closest && event.target.closest('.message');
    closeActions();
    if (node && list.contains(node)) {
      // Out of the toolbar (focus-within would keep it shown), back to the list.
      event.preventDefault();
      scroller.focus();
    }
  });

  // ---- composer -------------------------------------------------------------------
  function setBanner(text, onCancel) {
    banner.hidden = !text;
    banner.replaceChildren();
    if (text) {
      banner.append(h('span', { class: 'banner-text', text }), h('button', { type: 'button', class: 'link', 'aria-label': 'Cancel', onclick: onCancel }, 'Cancel'));
    }
  }

  function startReply(m) {
    editing = null;
    replyTo = m.seq;
    const who = isMe(m.sender_id) ? 'yourself' : displayName(m.sender_id);
    setBanner(`Replying to ${who}: ${summaryText(m).slice(0, 80)}`, cancelContext);
    input.focus();
  }

  function startEdit(m) {
    replyTo = null;
    editing = m.seq;
    input.value = m.body || '';
    setBanner('Editing your message', () => {
      cancelContext();
      input.value = '';
    });
    input.focus();
  }

  function cancelContext() {
    replyTo = null;
    editing = null;
    setBanner(null);
  }

  async function react(m, emoji, mine) {
    try {
      await toggleReaction(id, m.seq, emoji, mine);
    } catch (err) {
      showError(err);
    }
  }

  /** A row of quick reactions next to the message's actions; a choice closes it. */
  function openPicker(anchor, m) {
    const open = anchor.parentElement.querySelector('.reaction-picker');
    if (open) return open.remove();
    const mine = new Set((m.reactions || []).filter((r) => r.me).map((r) => r.emoji));
    const picker = h(
      'span',
      { class: 'reaction-picker', 'data-testid': 'reaction-picker' },
      ...QUICK_REACTIONS.map((emoji) =>
        h('button', {
          type: 'button',
          class: 'link',
          'data-testid': `pick-${emoji}`,
          'aria-label': `React with ${emoji}`,
          text: emoji,
          onclick: () => {
            picker.remove();
            react(m, emoji, mine.has(emoji));
          },
        }),
      ),
    );
    anchor.after(picker);
    // Pinned open while the choice is made, even when the pointer wanders off.
    anchor.closest('.message')?.classList.add('actions-open');
  }

  async function recall(m) {
    try {
      await recallMessage(id, m.seq);
    } catch (err) {
      showError(err);
    }
  }

  function showError(err) {
    composerError.hidden = false;
    composerError.textContent = describeError(err);
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => (composerError.hidden = true), 6000);
  }

  composer.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    composerError.hidden = true;
    if (editing !== null) {
      const seq = editing;
      try {
        await editMessage(id, seq, text);
        input.value = '';
        cancelContext();
      } catch (err) {
        showError(err);
      }
      return;
    }
    sendMessage(id, text, replyTo, mentions.mentionsIn(text));
    mentions.reset();
    input.value = '';
    cancelContext();
    setTyping(id, false);
    autosize();
    scroller.scrollTop = scroller.scrollHeight;
  });

  /**
   * Uploads and sends each file as its own message; the composer's text (unless an edit
   * is in progress) becomes the first one's caption, and a reply target its reply.
   */
  function sendFiles(files) {
    if (!files.length || input.disabled) return;
    composerError.hidden = true;
    const caption = editing === null ? input.value.trim() : '';
    files.forEach((file, index) => {
      const first = index === 0;
      sendFile(id, file, first ? caption : '', first ? replyTo : null, first && caption ? mentions.mentionsIn(caption) : []);
    });
    if (editing === null) {
      input.value = '';
      mentions.reset();
      cancelContext();
      setTyping(id, false);
      autosize();
    }
    scroller.scrollTop = scroller.scrollHeight;
  }

  fileInput.addEventListener('change', () => {
    const files = [...fileInput.files];
    fileInput.value = '';
    sendFiles(files);
    input.focus();
  });

  // A pasted image (a screenshot) is sent like an attached one; pasted text stays text.
  view.addEventListener('paste', (event) => {
    const files = [...((event.clipboardData && event.clipboardData.files) || [])];
    if (!files.length) return;
    event.preventDefault();
    sendFiles(files);
  });

  // Files dragged over the chat: a hint over the messages; dropped, they are sent.
  let dragDepth = 0;
  const carriesFiles = (event) => Boolean(event.dataTransfer && [...event.dataTransfer.types].includes('Files'));
  const endDrag = () => {
    dragDepth = 0;
    view.classList.remove('dragging');
  };
  view.addEventListener('dragenter', (event) => {
    if (!carriesFiles(event) || input.disabled) return;
    event.preventDefault();
    dragDepth += 1;
    view.classList.add('dragging');
  });
  view.addEventListener('dragover', (event) => {
    if (!carriesFiles(event) || input.disabled) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  view.addEventListener('dragleave', (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) view.classList.remove('dragging');
  });
  view.addEventListener('drop', (event) => {
    endDrag();
    if (!carriesFiles(event)) return;
    event.preventDefault();
    sendFiles([...event.dataTransfer.files]);
  });
  // A file dropped beside the chat must not replace the app with the file.
  const keepFiles = (event) => {
    if (carriesFiles(event) && !view.contains(event.target)) {
      event.preventDefault();
      if (event.type === 'drop') endDrag();
    }
  };
  document.addEventListener('dragover', keepFiles);
  document.addEventListener('drop', keepFiles);

  input.addEventListener('keydown', (event) => {
    if (mentions.onKey(event)) return;
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    } else if (event.key === 'Escape' && (replyTo !== null || editing !== null)) {
      if (editing !== null) input.value = '';
      cancelContext();
    } else if (event.key === 'ArrowUp' && !input.value) {
      const { stored } = timeline(id);
      const last = [...stored].reverse().find((m) => isMe(m.sender_id) && !m.deleted && m.kind === 'text');
      if (last) {
        event.preventDefault();
        startEdit(last);
      }
    }
  });
  input.addEventListener('input', () => {
    mentions.update();
    autosize();
    if (editing === null) setTyping(id, input.value.trim().length > 0);
  });
  input.addEventListener('blur', () => setTyping(id, false));

  function autosize() {
    // CSSOM writes are allowed by the CSP (only style attributes in markup are not).
    input.style.height = 'auto';
    const borders = input.offsetHeight - input.clientHeight;
    input.style.height = `${Math.min(input.scrollHeight + borders, 160)}px`;
  }

  const onVisible = () => !document.hidden && markRead(id);
  document.addEventListener('visibilitychange', onVisible);

  const offs = [
    bus.on('chat', (detail) => detail.id === id && renderMessages()),
    bus.on('receipts', (detail) => detail.id === id && renderMessages()),
    bus.on('users', () => {
      renderMessages();
      renderTyping();
    }),
    bus.on('typing', (detail) => detail.id === id && renderTyping()),
    bus.on('presence', renderHead),
    bus.on('conversations', renderHead),
    bus.on('group', renderHead),
  ];

  renderHead();
  renderTyping();
  openChat(id)
    .then(async () => {
      renderMessages();
      opened = true;
      scroller.scrollTop = scroller.scrollHeight;
      // Opened with unread messages: start at the "New messages" line when they do not all fit.
      const marker = list.querySelector('[data-testid=unread-marker]');
      if (marker && focusSeq === null && marker.offsetTop < scroller.scrollTop) scroller.scrollTop = marker.offsetTop - 8;
      renderJump();
      if (focusSeq !== null) await focusMessage(focusSeq);
    })
    .catch((err) => showError(err));
  input.focus();

  return () => {
    clearTimeout(renderLock.timer);
    setTyping(id, false);
    closeChat(id);
    document.removeEventListener('visibilitychange', onVisible);
    document.removeEventListener('click', onDocumentClick, true);
    document.removeEventListener('dragover', keepFiles);
    document.removeEventListener('drop', keepFiles);
    endPress();
    offs.forEach((off) => off());
  };
}

const PAPERCLIP = 'M16.5 6.5 8.9 14.1a1.8 1.8 0 0 0 2.6 2.6l7.3-7.3a3.7 3.7 0 0 0-5.3-5.3L6.2 11.4a5.6 5.6 0 0 0 7.9 7.9l6.2-6.2';
const DOCUMENT = 'M6.5 2.5h7.5l4.5 4.5v14.5h-12zM14 2.5V7h4.5M9 12h6M9 15.5h6';

/** A line icon (24 × 24, drawn in the current colour) from an SVG path. */
function icon(path) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const line = document.createElementNS(ns, 'path');
  line.setAttribute('d', path);
  svg.append(line);
  return svg;
}
