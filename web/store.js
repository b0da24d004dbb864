// The client-side model: conversations, loaded messages, cursors, presence, typing and
// receipts, and the actions that change them over REST or the WebSocket. Views read
// `state` and subscribe to `bus`; they never talk to the network themselves for chat.
//
// Catch-up follows docs/protocol.md §5: per conversation we keep the `version` up to
// which we hold every change. A live event moves it only when it is the next version; a
// gap, a `resync` event and every (re)connect run a `sync`, which returns each message
// changed since; a message is applied only when it is newer than the copy we hold, so
// events racing the sync reply are neither lost nor shown twice.

import { ApiError, api, currentUserId, query, upload } from './api.js';
import { Realtime } from './socket.js';

class Emitter {
  constructor() {
    this.handlers = new Map();
  }
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }
  emit(type, detail) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`handler for ${type} failed`, err);
      }
    }
  }
}

export const bus = new Emitter();

export const state = {
  me: null,
  /** id → ConversationView from GET /conversations, kept current by events. */
  conversations: new Map(),
  conversationsLoaded: false,
  /** id → { messages: Map(seq → message), pending: Map(client_msg_id → local), hasOlder, loaded } */
  chats: new Map(),
  /** id → the version up to which this client holds every change. */
  cursors: new Map(),
  /** user id → { online, last_seen_at } */
  presence: new Map(),
  /** conversation id → Map(user id → expiry timer) */
  typing: new Map(),
  /** conversation id → Map(user id → { read, delivered }) */
  receipts: new Map(),
  /** user id → { id, username, nickname, avatar_url } */
  users: new Map(),
  /** group id → { group (GET /groups/{id}), members (MemberView[]) }, for opened group chats. */
  groups: new Map(),
  /** conversation id → Set of seqs of messages that mention the user (read ones are pruned). */
  mentions: new Map(),
  friends: [],
  incomingRequests: 0,
  connection: { state: 'stopped', detail: {} },
  /** The conversation on screen, if any. */
  active: null,
};

const SYNC_LIMIT = 200;
const MAX_SYNC_ROUNDS = 50;

const realtime = new Realtime({
  onEvent: handleEvent,
  onOpen: catchUp,
  onState(connection, detail) {
    state.connection = { state: connection, detail };
    // Without a connection nobody's presence is known any more: show none rather than
    // a stale "online". catchUp() asks again once the connection is back.
    if (connection !== 'online' && state.presence.size) {
      state.presence.clear();
      bus.emit('presence');
    }
    bus.emit('connection', state.connection);
  },
});

// ---- lifecycle --------------------------------------------------------------------

export async function start() {
  state.me = await api('GET', '/me');
  remember(state.me);
  await Promise.all([loadConversations(), loadFriends(), countIncomingRequests()]);
  realtime.start();
  scanMentions();
}

export function stop() {
  realtime.stop();
  for (const timers of state.typing.values()) for (const timer of timers.values()) clearTimeout(timer);
  Object.assign(state, {
    me: null,
    conversationsLoaded: false,
    friends: [],
    incomingRequests: 0,
    active: null,
  });
  for (const key of ['conversations', 'chats', 'cursors', 'presence', 'typing', 'receipts', 'users', 'groups', 'mentions']) state[key].clear();
  typingSent.clear();
}

/** Test and debugging hooks (see tests/api/browser.rs). */
export const debug = {
  dropConnection: () => realtime.hold(),
  restoreConnection: () => realtime.resume(),
  connectionState: () => state.connection.state,
};

export function isMe(userId) {
  return state.me !== null && userId === state.me.id;
}

/** Caches what we know of a user (for names and avatars). */
export function remember(user) {
  if (!user || typeof user.id !== 'number') return;
  const known = state.users.get(user.id) || {};
  state.users.set(user.id, { ...known, ...user });
}

const userLookups = new Map();
/** The user's display name, fetching the profile once if unknown. */
export function displayName(userId) {
  const user = state.users.get(userId);
  if (user) return user.nickname || user.username;
  if (!userLookups.has(userId)) {
    userLookups.set(
      userId,
      api('GET', `/users/${userId}`)
        .then((profile) => {
          remember(profile);
          bus.emit('users', userId);
        })
        .catch(() => {}),
    );
  }
  return `user ${userId}`;
}

// ---- conversations ----------------------------------------------------------------

export async function loadConversations() {
  const page = await api('GET', `/conversations${query({ limit: 100 })}`);
  state.conversations.clear();
  for (const conversation of page.items) {
    state.conversations.set(conversation.id, conversation);
    if (conversation.peer) remember(conversation.peer);
    // A snapshot is a safe starting point only where we hold nothing yet.
    if (!state.cursors.has(conversation.id)) raiseCursor(conversation.id, conversation.version ?? conversation.last_seq);
  }
  state.conversationsLoaded = true;
  bus.emit('conversations');
}

let reloadTimer = null;
/** Reloads the list soon (a conversation we do not know yet became active). */
function reloadConversationsSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadConversations().catch(() => {}), 200);
}

export function conversationTitle(conversation) {
  if (!conversation) return '';
  if (conversation.kind === 'group') return conversation.group_name || `Group ${conversation.group_id}`;
  return conversation.peer ? conversation.peer.nickname || conversation.peer.username : 'Direct chat';
}

/** Conversations sorted as the server sorts them: pinned first, then by activity. */
export function sortedConversations() {
  return [...state.conversations.values()].sort((a, b) => {
    if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
    return new Date(b.activity_at) - new Date(a.activity_at) || b.id - a.id;
  });
}

export function unread(conversation) {
  return Math.max(0, conversation.last_seq - conversation.last_read_seq);
}

/** Whether `message` (from someone else, not recalled) names the user or everyone. */
export function mentionsMe(message) {
  if (!state.me || !message || isMe(message.sender_id) || message.deleted) return false;
  return Boolean(message.mention_all) || (message.mentions || []).includes(state.me.id);
}

/** Remembers an unread message that mentions the user; forgets a recalled one. */
function noteMention(message) {
  const conversation = state.conversations.get(message.conversation_id);
  let seqs = state.mentions.get(message.conversation_id);
  if (message.deleted) {
    if (seqs) seqs.delete(message.seq);
    return;
  }
  if (!conversation || !mentionsMe(message) || message.seq <= conversation.last_read_seq) return;
  if (!seqs) state.mentions.set(message.conversation_id, (seqs = new Set()));
  seqs.add(message.seq);
}

/** How many unread messages of `conversation` mention the user. */
export function unreadMentions(conversation) {
  const seqs = state.mentions.get(conversation.id);
  if (!seqs) return 0;
  for (const seq of seqs) if (seq <= conversation.last_read_seq) seqs.delete(seq);
  return seqs.size;
}

/**
 * The conversation list does not say which unread messages mention the user, so after
 * sign-in (or a reload) the unread tail of each group chat is read once to find them;
 * from then on live events and syncs keep count.
 */
async function scanMentions() {
  const groups = [...state.conversations.values()].filter((c) => c.kind === 'group' && unread(c) > 0).slice(0, 20);
  for (const conversation of groups) {
    try {
      const page = await api('GET', `/conversations/${conversation.id}/messages${query({ limit: Math.min(unread(conversation), 100) })}`);
      for (const message of page.items) noteMention(message);
    } catch {
      // The badge is a hint; live events still count.
    }
  }
  if (groups.length) bus.emit('conversations');
}

export async function openDirect(userId) {
  const { conversation_id: id } = await api('POST', '/conversations/direct', { user_id: userId });
  if (!state.conversations.has(id)) await loadConversations();
  return id;
}

export async function openGroupConversation(groupId) {
  const { conversation_id: id } = await api('GET', `/groups/${groupId}/conversation`);
  if (!state.conversations.has(id)) await loadConversations();
  return id;
}

function raiseCursor(id, version) {
  if (typeof version !== 'number') return;
  if (version > (state.cursors.get(id) ?? -1)) state.cursors.set(id, version);
}

/**
 * A live change with `version`: the cursor moves only onto the next version. A version
 * further ahead means events were missed, and a sync fetches them (the cursor stays).
 */
function liveVersion(id, version) {
  if (typeof version !== 'number') return;
  const cursor = state.cursors.get(id);
  if (cursor === undefined || version > cursor + 1) resyncSoon();
  else if (version === cursor + 1) state.cursors.set(id, version);
}

let resyncTimer = null;
let resyncRunning = false;
let resyncAgain = false;

/** Runs one `sync` shortly (gaps and `resync` events often come in bursts). */
function resyncSoon() {
  if (resyncRunning) {
    resyncAgain = true;
    return;
  }
  if (resyncTimer !== null || !realtime.isOpen) return;
  resyncTimer = setTimeout(async () => {
    resyncTimer = null;
    resyncRunning = true;
    try {
      await syncChanges();
    } catch {
      // The socket dropped: the reconnect's catch-up syncs anyway.
    } finally {
      resyncRunning = false;
      if (resyncAgain) {
        resyncAgain = false;
        resyncSoon();
      }
    }
  }, 50);
}

function chatOf(id) {
  let chat = state.chats.get(id);
  if (!chat) {
    chat = { messages: new Map(), pending: new Map(), hasOlder: true, loaded: false };
    state.chats.set(id, chat);
  }
  return chat;
}

export function chat(id) {
  return chatOf(id);
}

// ---- messages ---------------------------------------------------------------------

/**
 * Keeps `message` when it is newer than the copy held. `live` marks sources that are
 * complete up to the message (events on an open socket, sync replies): only they may
 * raise the catch-up cursor; a REST page fetched while offline may not.
 */
function applyMessage(message) {
  const id = message.conversation_id;
  const conversation = state.conversations.get(id);
  if (conversation) {
    if (message.seq >= conversation.last_seq) {
      conversation.last_seq = message.seq;
      conversation.last_message = preview(message);
      conversation.activity_at = message.created_at;
    }
    if (isMe(message.sender_id) && message.seq > conversation.last_read_seq) conversation.last_read_seq = message.seq;
  } else {
    reloadConversationsSoon();
  }
  noteMention(message);
  const chat = state.chats.get(id);
  if (!chat || !chat.loaded) return;
  if (isMe(message.sender_id)) chat.pending.delete(message.client_msg_id);
  const held = chat.messages.get(message.seq);
  const stale = held && typeof held.version === 'number' && typeof message.version === 'number' && held.version >= message.version;
  if (!stale) chat.messages.set(message.seq, { ...held, ...message });
}

function preview(message) {
  return {
    sender_id: message.sender_id,
    kind: message.kind,
    body: message.deleted ? null : message.body,
    // Not in the server's list preview; kept while the client saw the message itself.
    name: message.deleted || !message.content ? undefined : message.content.name,
    deleted: message.deleted,
    created_at: message.created_at,
  };
}

/**
 * One line that stands for a message (or a conversation's last message preview): the
 * text, or "📷 Photo" / "📎 name" for an image or a file, with its caption.
 */
export function summaryText(message) {
  if (!message) return '';
  if (message.deleted) return 'Message recalled';
  const caption = message.body ? `: ${message.body}` : '';
  if (message.kind === 'image') return `📷 Photo${caption}`;
  if (message.kind === 'file') {
    const name = (message.content && message.content.name) || message.name;
    return name ? `📎 ${name}${caption}` : `📎 ${message.body || 'File'}`;
  }
  return message.body ?? `[${message.kind}]`;
}

export async function openChat(id) {
  state.active = id;
  const chat = chatOf(id);
  if (!chat.loaded) {
    const page = await api('GET', `/conversations/${id}/messages${query({ limit: 40 })}`);
    chat.loaded = true;
    chat.hasOlder = page.has_older;
    for (const message of page.items) applyMessage(message);
    bus.emit('chat', { id });
  }
  const conversation = state.conversations.get(id);
  if (conversation && conversation.kind === 'group' && conversation.group_id) loadGroupMembers(conversation.group_id);
  loadReceipts(id);
  markRead(id);
}

export function closeChat(id) {
  if (state.active === id) state.active = null;
}

/**
 * Loads a group's facts and members (for the chat header, the @mention list and the
 * composer's state). Not a member any more: no members, and `group.my_role` is null.
 */
export async function loadGroupMembers(groupId) {
  try {
    const group = await api('GET', `/groups/${groupId}`);
    let members = [];
    if (group.my_role) {
      const page = await api('GET', `/groups/${groupId}/members${query({ limit: 100 })}`);
      members = page.items;
      for (const member of members) remember(member.user);
    }
    state.groups.set(groupId, { group, members });
    bus.emit('users');
    bus.emit('group', { groupId });
  } catch (err) {
    // A group that is gone for us (kicked from an invitation-only one) answers 404.
    if (err.status === 404) {
      state.groups.set(groupId, { group: null, members: [] });
      bus.emit('group', { groupId });
    }
  }
}

/** What we know of a group: { group, members }, or undefined before its chat is opened. */
export function groupInfo(groupId) {
  return state.groups.get(groupId);
}

/** Whether `member` is muted now. */
export function isMutedMember(member) {
  return Boolean(member && member.muted_until && new Date(member.muted_until) > new Date());
}

async function loadReceipts(id) {
  try {
    const data = realtime.isOpen
      ? await realtime.request('receipts', { conversation_id: id })
      : await api('GET', `/conversations/${id}/receipts`);
    const map = new Map();
    for (const member of data.members || []) {
      map.set(member.user_id, { read: member.last_read_seq || 0, delivered: member.last_delivered_seq || 0 });
    }
    state.receipts.set(id, map);
    bus.emit('receipts', { id });
  } catch {
    // Receipts are decoration; the next event fills them in.
  }
}

/** Loads the page before the oldest loaded message; false when there is none. */
export async function loadOlder(id) {
  const chat = chatOf(id);
  if (!chat.hasOlder) return false;
  const seqs = [...chat.messages.keys()];
  const before = seqs.length ? Math.min(...seqs) : undefined;
  const page = await api('GET', `/conversations/${id}/messages${query({ before, limit: 40 })}`);
  chat.hasOlder = page.has_older;
  for (const message of page.items) applyMessage(message);
  bus.emit('chat', { id, older: true });
  return page.items.length > 0;
}

/** The messages to show, oldest first, then the ones not yet acknowledged. */
export function timeline(id) {
  const chat = chatOf(id);
  const stored = [...chat.messages.values()].sort((a, b) => a.seq - b.seq);
  return { stored, pending: [...chat.pending.values()] };
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Outside a secure context (plain http on a LAN address) randomUUID is missing.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function sendMessage(id, body, replyToSeq, mentions = []) {
  const local = {
    conversation_id: id,
    client_msg_id: uuid(),
    sender_id: state.me.id,
    kind: 'text',
    body,
    reply_to_seq: replyToSeq ?? null,
    mentions,
    created_at: new Date().toISOString(),
    status: 'pending',
    error: null,
  };
  chatOf(id).pending.set(local.client_msg_id, local);
  bus.emit('chat', { id });
  deliver(local);
}

/**
 * Uploads `file` and then sends it as an `image` (when the server could read it as one)
 * or a `file`, with `caption` as its body. Until the upload is done the message is a
 * pending bubble that shows its progress; a failed upload stays there with its error.
 */
export function sendFile(id, file, caption, replyToSeq, mentions = []) {
  const name = file.name || (file.type === 'image/png' ? 'pasted image.png' : file.type === 'image/jpeg' ? 'pasted image.jpg' : 'file');
  const local = {
    conversation_id: id,
    client_msg_id: uuid(),
    sender_id: state.me.id,
    kind: /^image\//.test(file.type) ? 'image' : 'file',
    body: caption || null,
    content: { name, size: file.size, mime: file.type },
    reply_to_seq: replyToSeq ?? null,
    mentions,
    created_at: new Date().toISOString(),
    status: 'uploading',
    progress: 0,
    error: null,
    file,
    uploaded: null,
    preview: /^image\//.test(file.type) ? URL.createObjectURL(file) : null,
  };
  chatOf(id).pending.set(local.client_msg_id, local);
  bus.emit('chat', { id });
  uploadThenDeliver(local);
}

async function uploadThenDeliver(local) {
  const id = local.conversation_id;
  if (local.inFlight) return;
  local.inFlight = true;
  local.status = 'uploading';
  local.error = null;
  local.progress = 0;
  bus.emit('chat', { id });
  let shown = 0;
  try {
    const answer = await upload(local.file, local.content.name, (fraction) => {
      local.progress = fraction;
      // A re-render per whole percent at most.
      if (Math.floor(fraction * 100) !== shown) {
        shown = Math.floor(fraction * 100);
        bus.emit('chat', { id });
      }
    });
    local.uploaded = answer;
    local.kind = typeof answer.width === 'number' ? 'image' : 'file';
    local.content = { upload_id: answer.id, name: answer.name, mime: answer.mime, size: answer.size };
    if (local.kind === 'image') Object.assign(local.content, { width: answer.width, height: answer.height });
    local.status = 'pending';
  } catch (err) {
    local.status = 'failed';
    local.error = err;
    local.uploadFailed = true;
    local.transient = err.code === 'network_error' || err.status >= 500;
    bus.emit('chat', { id });
    return;
  } finally {
    local.inFlight = false;
  }
  local.uploadFailed = false;
  local.file = null;
  bus.emit('chat', { id });
  deliver(local);
}

/** Sends again with the same client_msg_id: the server answers with the original ack. */
export function retry(id, clientMsgId) {
  const local = chatOf(id).pending.get(clientMsgId);
  if (local) resend(local);
}

/** A file whose upload failed is uploaded again; everything else is sent again. */
function resend(local) {
  if (local.file && !local.uploaded) uploadThenDeliver(local);
  else deliver(local);
}

/** Gives up on a message that was never sent (a failed upload). */
export function discard(id, clientMsgId) {
  const chat = chatOf(id);
  const local = chat.pending.get(clientMsgId);
  if (!local || local.inFlight) return;
  chat.pending.delete(clientMsgId);
  if (local.preview) URL.revokeObjectURL(local.preview);
  bus.emit('chat', { id });
}

const TRANSIENT = new Set(['disconnected', 'timeout', 'network_error', 'service_unavailable', 'stopped', 'rate_limited']);

/**
 * Sends `local` after every earlier send of its conversation has finished, so messages
 * are stored in the order they were written whichever way they go (socket or REST):
 * several in flight at once over REST could be stored out of order.
 */
function deliver(local) {
  const chat = chatOf(local.conversation_id);
  chat.sending = (chat.sending || Promise.resolve()).then(() => deliverNow(local)).catch(() => {});
  return chat.sending;
}

async function deliverNow(local) {
  if (local.inFlight || !chatOf(local.conversation_id).pending.has(local.client_msg_id)) return;
  // A file is sent once its upload is done (uploadThenDeliver).
  if (local.file && !local.uploaded) return;
  const id = local.conversation_id;
  local.inFlight = true;
  local.status = 'pending';
  local.error = null;
  bus.emit('chat', { id });
  const message = { client_msg_id: local.client_msg_id, body: local.body };
  if (local.uploaded) {
    message.kind = local.kind;
    message.content = { upload_id: local.uploaded.id };
    if (!local.body) delete message.body;
  }
  if (local.reply_to_seq) message.reply_to_seq = local.reply_to_seq;
  if (local.mentions && local.mentions.length) message.mentions = local.mentions;
  try {
    const ack = realtime.isOpen
      ? await realtime.request('send', { conversation_id: id, message })
      : await api('POST', `/conversations/${id}/messages`, message);
    applyAck(local, ack);
  } catch (err) {
    local.status = 'failed';
    local.error = err;
    local.transient = TRANSIENT.has(err.code) || err.status >= 500;
    bus.emit('chat', { id });
  } finally {
    local.inFlight = false;
  }
}

function applyAck(local, ack) {
  const chat = chatOf(local.conversation_id);
  chat.pending.delete(local.client_msg_id);
  // The message_created event may have arrived first; it carries the full message.
  if (!chat.messages.has(ack.seq)) {
    applyMessage({
      conversation_id: local.conversation_id,
      seq: ack.seq,
      sender_id: local.sender_id,
      client_msg_id: local.client_msg_id,
      kind: local.uploaded ? local.kind : 'text',
      body: local.body,
      content: local.uploaded ? local.content : null,
      reply_to_seq: local.reply_to_seq,
      mentions: local.mentions || [],
      mention_all: false,
      created_at: ack.created_at,
      edited_at: null,
      deleted: false,
    });
  }
  const conversation = state.conversations.get(local.conversation_id);
  if (conversation && ack.seq > conversation.last_read_seq) conversation.last_read_seq = ack.seq;
  bus.emit('chat', { id: local.conversation_id });
  bus.emit('conversations');
  // The bubble that showed the local picture has been replaced by now.
  if (local.preview) URL.revokeObjectURL(local.preview);
}

export async function editMessage(id, seq, body) {
  const message = realtime.isOpen
    ? await realtime.request('edit', { conversation_id: id, seq, body })
    : await api('PATCH', `/conversations/${id}/messages/${seq}`, { body });
  if (message && typeof message.seq === 'number') applyMessage(message);
  bus.emit('chat', { id });
}

/** Mutes or unmutes a conversation for the caller (PATCH …/settings). */
export async function setConversationMuted(id, muted) {
  const settings = await api('PATCH', `/conversations/${id}/settings`, { muted });
  const conversation = state.conversations.get(id);
  if (conversation) conversation.muted = settings.muted;
  bus.emit('conversations');
}

/** Adds the caller's `emoji` to a message, or takes it back; the live event updates the counts. */
export async function toggleReaction(id, seq, emoji, mine) {
  if (realtime.isOpen) await realtime.request('react', { conversation_id: id, seq, emoji, add: !mine });
  else await api(mine ? 'DELETE' : 'PUT', `/conversations/${id}/messages/${seq}/reactions/${encodeURIComponent(emoji)}`);
}

export async function recallMessage(id, seq) {
  if (realtime.isOpen) await realtime.request('recall', { conversation_id: id, seq });
  else await api('DELETE', `/conversations/${id}/messages/${seq}`);
  tombstone(id, seq);
}

function tombstone(id, seq, version) {
  const chat = state.chats.get(id);
  const held = chat && chat.messages.get(seq);
  if (held) chat.messages.set(seq, { ...held, deleted: true, body: null, content: null, version: version ?? held.version });
  const conversation = state.conversations.get(id);
  if (conversation && conversation.last_message && seq === conversation.last_seq) {
    conversation.last_message = { ...conversation.last_message, deleted: true, body: null };
    bus.emit('conversations');
  }
  bus.emit('chat', { id });
}

let readTimers = new Map();
/** Moves the read marker to the newest message once the chat is on screen. */
export function markRead(id) {
  clearTimeout(readTimers.get(id));
  readTimers.set(
    id,
    setTimeout(async () => {
      const conversation = state.conversations.get(id);
      if (!conversation || state.active !== id || document.hidden) return;
      const seq = conversation.last_seq;
      if (seq <= conversation.last_read_seq) return;
      try {
        const data = realtime.isOpen
          ? await realtime.request('read', { conversation_id: id, seq })
          : await api('POST', `/conversations/${id}/read`, { seq });
        conversation.last_read_seq = Math.max(conversation.last_read_seq, data.last_read_seq);
        bus.emit('conversations');
      } catch {
        // Retried on the next message or visit.
      }
    }, 150),
  );
}

let deliveredTimers = new Map();
function acknowledgeDelivery(id, seq) {
  clearTimeout(deliveredTimers.get(id));
  deliveredTimers.set(
    id,
    setTimeout(() => {
      if (realtime.isOpen) realtime.request('delivered', { conversation_id: id, seq }).catch(() => {});
    }, 300),
  );
}

/** Per conversation: when we last sent a typing frame, its value, a delayed send. */
const typingSent = new Map();
/** The server forwards at most one `typing: true` per conversation per second. */
const TYPING_SPACING_MS = 1100;
const TYPING_RENEW_MS = 3000;

/** Tells the others we are (still) typing, at most every 3 s, or that we stopped. */
export function setTyping(id, typing) {
  if (!realtime.isOpen) return;
  let entry = typingSent.get(id);
  if (!entry) {
    entry = { at: 0, value: false, timer: null };
    typingSent.set(id, entry);
  }
  if (!typing && !entry.value) {
    // Nothing was announced yet: just cancel a pending announcement.
    clearTimeout(entry.timer);
    entry.timer = null;
    return;
  }
  if (typing && (entry.timer || (entry.value && Date.now() - entry.at < TYPING_RENEW_MS))) return;
  clearTimeout(entry.timer);
  entry.timer = null;
  const send = () => {
    entry.timer = null;
    entry.at = Date.now();
    entry.value = typing;
    realtime.request('typing', { conversation_id: id, typing }).catch(() => {});
  };
  // A `true` sent too soon after the previous frame would be acknowledged but not
  // forwarded, so it waits for its turn instead.
  const wait = typing ? entry.at + TYPING_SPACING_MS - Date.now() : 0;
  if (wait > 0) entry.timer = setTimeout(send, wait);
  else send();
}

export function typists(id) {
  return [...(state.typing.get(id) || new Map()).keys()];
}

/** Who has read `seq` (other members only). */
export function readers(id, seq) {
  const map = state.receipts.get(id);
  if (!map) return [];
  return [...map.entries()].filter(([userId, marker]) => !isMe(userId) && marker.read >= seq).map(([userId]) => userId);
}

export function deliveredTo(id, seq) {
  const map = state.receipts.get(id);
  if (!map) return [];
  return [...map.entries()].filter(([userId, marker]) => !isMe(userId) && marker.delivered >= seq).map(([userId]) => userId);
}

function setReceipt(id, userId, field, seq) {
  if (!state.receipts.has(id)) state.receipts.set(id, new Map());
  const map = state.receipts.get(id);
  const marker = map.get(userId) || { read: 0, delivered: 0 };
  marker[field] = Math.max(marker[field], seq);
  if (field === 'read') marker.delivered = Math.max(marker.delivered, seq);
  map.set(userId, marker);
  bus.emit('receipts', { id });
}

// ---- friends and presence ----------------------------------------------------------

export async function loadFriends() {
  const items = [];
  let cursor;
  for (let page = 0; page < 10; page++) {
    const answer = await api('GET', `/friends${query({ limit: 100, cursor })}`);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  state.friends = items;
  for (const friend of items) remember(friend.user);
  bus.emit('friends');
  refreshPresence();
}

export async function countIncomingRequests() {
  const page = await api('GET', `/friend-requests${query({ direction: 'incoming', limit: 100 })}`);
  state.incomingRequests = page.items.length;
  bus.emit('requests');
  return page;
}

async function refreshPresence() {
  if (!realtime.isOpen || state.friends.length === 0) return;
  try {
    const data = await realtime.request('presence', { user_ids: state.friends.slice(0, 200).map((f) => f.user.id) });
    for (const user of data.users || []) state.presence.set(user.user_id, { online: user.online, last_seen_at: user.last_seen_at });
    bus.emit('presence');
  } catch {
    // Dots stay grey until the next presence event.
  }
}

export function isOnline(userId) {
  const presence = state.presence.get(userId);
  return Boolean(presence && presence.online);
}

// ---- real time ----------------------------------------------------------------------

/** Runs after every (re)connect, before the connection counts as online. */
async function catchUp() {
  await syncChanges();
  refreshPresence();
  if (state.active !== null) loadReceipts(state.active);
  // Anything sent while disconnected goes out again with its original client_msg_id,
  // in the order it was written (deliver() queues per conversation).
  for (const chat of state.chats.values()) {
    for (const local of chat.pending.values()) {
      if (local.status === 'pending' || (local.status === 'failed' && local.transient)) resend(local);
    }
  }
  countIncomingRequests().catch(() => {});
}

/** `sync` from the cursors until nothing is pending (docs/protocol.md §5). */
async function syncChanges() {
  const cursors = new Map(state.cursors);
  for (const conversation of state.conversations.values()) {
    if (!cursors.has(conversation.id)) cursors.set(conversation.id, conversation.last_seq);
  }
  for (let round = 0; round < MAX_SYNC_ROUNDS; round++) {
    const data = await realtime.request('sync', { cursors: Object.fromEntries(cursors), limit: SYNC_LIMIT }, 20_000);
    let unknown = false;
    for (const entry of data.conversations || []) {
      const id = entry.conversation_id;
      const conversation = state.conversations.get(id);
      if (!conversation) unknown = true;
      for (const message of entry.changes || []) applyMessage(message);
      if (conversation) {
        conversation.last_seq = Math.max(conversation.last_seq, entry.last_seq ?? 0);
        if (typeof entry.last_read_seq === 'number') conversation.last_read_seq = Math.max(conversation.last_read_seq, entry.last_read_seq);
      }
      const seen = (entry.changes || []).reduce((max, m) => Math.max(max, m.version ?? 0), cursors.get(id) ?? 0);
      const reached = entry.has_more ? seen : Math.max(seen, entry.version ?? seen);
      cursors.set(id, reached);
      raiseCursor(id, reached);
      if (entry.changes && entry.changes.length && id === state.active) markRead(id);
    }
    if (unknown) reloadConversationsSoon();
    bus.emit('conversations');
    for (const id of state.chats.keys()) bus.emit('chat', { id });
    if (!data.has_more) break;
  }
}

function handleEvent(event) {
  switch (event.type) {
    case 'message_created':
    case 'message_edited': {
      const message = event.message;
      const id = message.conversation_id;
      const conversation = state.conversations.get(id);
      const fresh = event.type === 'message_created' && conversation && message.seq > conversation.last_seq;
      applyMessage(message);
      liveVersion(id, message.version);
      clearTyping(id, message.sender_id);
      if (fresh && !isMe(message.sender_id)) acknowledgeDelivery(id, message.seq);
      if (id === state.active) markRead(id);
      bus.emit('chat', { id });
      bus.emit('conversations');
      // A new message as it arrives (notify.js decides whether it is worth a notification).
      if (fresh) bus.emit('message', message);
      break;
    }
    case 'message_deleted':
      liveVersion(event.conversation_id, event.version);
      tombstone(event.conversation_id, event.seq, event.version);
      break;
    case 'reaction_added':
    case 'reaction_removed':
      applyReaction(event);
      break;
    case 'resync':
      resyncSoon();
      break;
    case 'read_marker_moved': {
      const id = event.conversation_id;
      if (isMe(event.user_id)) {
        const conversation = state.conversations.get(id);
        if (conversation) conversation.last_read_seq = Math.max(conversation.last_read_seq, event.last_read_seq);
        bus.emit('conversations');
      } else {
        setReceipt(id, event.user_id, 'read', event.last_read_seq);
      }
      break;
    }
    case 'delivery_receipt':
      if (!isMe(event.user_id)) setReceipt(event.conversation_id, event.user_id, 'delivered', event.last_delivered_seq);
      break;
    case 'typing':
      if (event.typing) startTyping(event.conversation_id, event.user_id, event.expires_in_ms || 5000);
      else clearTyping(event.conversation_id, event.user_id);
      break;
    case 'presence':
      state.presence.set(event.user_id, { online: event.online, last_seen_at: event.last_seen_at });
      bus.emit('presence');
      break;
    case 'friend_request_received':
    case 'friend_request_declined':
    case 'friend_request_cancelled':
      countIncomingRequests().catch(() => {});
      bus.emit('friend_requests');
      break;
    case 'friend_request_accepted':
    case 'friend_added':
    case 'friend_removed':
      loadFriends().catch(() => {});
      countIncomingRequests().catch(() => {});
      bus.emit('friend_requests');
      break;
    default:
      if (event.type && event.type.startsWith('group_')) {
        const concernsMe = isMe(event.user_id) || event.type === 'group_disbanded' || event.type === 'group_updated';
        if (concernsMe) reloadConversationsSoon();
        // Keep an opened group chat's members, roles and mutes current.
        if (state.groups.has(event.group_id)) loadGroupMembers(event.group_id);
        bus.emit('groups', event);
      }
  }
}

function applyReaction(event) {
  liveVersion(event.conversation_id, event.version);
  const chat = state.chats.get(event.conversation_id);
  const message = chat && chat.messages.get(event.seq);
  if (!message) return;
  const reactions = (message.reactions || []).map((r) => ({ ...r }));
  let entry = reactions.find((r) => r.emoji === event.emoji);
  if (!entry) {
    entry = { emoji: event.emoji, count: 0, me: false };
    reactions.push(entry);
  }
  entry.count += event.type === 'reaction_added' ? 1 : -1;
  if (isMe(event.user_id)) entry.me = event.type === 'reaction_added';
  const version = Math.max(message.version ?? 0, event.version ?? 0);
  chat.messages.set(event.seq, { ...message, version, reactions: reactions.filter((r) => r.count > 0) });
  bus.emit('chat', { id: event.conversation_id });
}

function startTyping(id, userId, ms) {
  if (isMe(userId)) return;
  if (!state.typing.has(id)) state.typing.set(id, new Map());
  const map = state.typing.get(id);
  clearTimeout(map.get(userId));
  map.set(userId, setTimeout(() => clearTyping(id, userId), ms));
  bus.emit('typing', { id });
}

function clearTyping(id, userId) {
  const map = state.typing.get(id);
  if (!map || !map.has(userId)) return;
  clearTimeout(map.get(userId));
  map.delete(userId);
  bus.emit('typing', { id });
}

export { ApiError, currentUserId };
