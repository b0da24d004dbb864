// Desktop notifications (the Notification API), off until the user turns them on from
// the profile page: the browser is asked only then, on that click, and the choice is
// remembered in this browser (localStorage). A notification is shown for a new message
// from someone else in a conversation that is not muted and not on screen; clicking it
// brings the window forward and opens that conversation.

import { bus, conversationTitle, displayName, isMe, state } from './store.js';

const SETTING = 'goim.notifications';

/** The browser's Notification API, looked up on each use (tests may stand in for it). */
function api() {
  return typeof window.Notification === 'function' ? window.Notification : null;
}

/** The remembered choice; storage may be unavailable (some private modes): then off. */
function remembered() {
  try {
    return localStorage.getItem(SETTING);
  } catch {
    return null;
  }
}

function remember(value) {
  try {
    localStorage.setItem(SETTING, value);
  } catch {
    // Not remembered; the switch shows what holds.
  }
}

/**
 * Where notifications stand: `unsupported` (no API), `denied` (blocked in the browser),
 * `on`, or `off` (not asked yet, or turned off here).
 */
export function notificationState() {
  const Notification = api();
  if (!Notification) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  return Notification.permission === 'granted' && remembered() === 'on' ? 'on' : 'off';
}

/** Turns notifications on, asking the browser first; call it from a click. */
export async function enableNotifications() {
  const Notification = api();
  if (!Notification) return 'unsupported';
  const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
  if (permission === 'granted') remember('on');
  return notificationState();
}

export function disableNotifications() {
  remember('off');
  return notificationState();
}

/** Whether the conversation `id` is the one on screen, in a tab the user can see. */
function onScreen(id) {
  return state.active === id && document.visibilityState === 'visible';
}

function describe(message) {
  if (message.body) return message.body.length > 140 ? `${message.body.slice(0, 139)}…` : message.body;
  const kinds = { image: 'Sent a picture', file: 'Sent a file', link: 'Shared a link' };
  return kinds[message.kind] || 'New message';
}

function notify(message) {
  const Notification = api();
  if (!Notification || notificationState() !== 'on' || isMe(message.sender_id)) return;
  const id = message.conversation_id;
  const conversation = state.conversations.get(id);
  if (!conversation || conversation.muted || onScreen(id)) return;
  const group = conversation.kind === 'group';
  const text = describe(message);
  let shown;
  try {
    shown = new Notification(conversationTitle(conversation), {
      body: group ? `${displayName(message.sender_id)}: ${text}` : text,
      // One per conversation: a newer message replaces the older notification.
      tag: `goim-conversation-${id}`,
    });
  } catch {
    // Some browsers only notify from a service worker; the unread badges still tell.
    return;
  }
  shown.onclick = () => {
    window.focus();
    location.hash = `#/chats/${id}`;
    shown.close();
  };
}

bus.on('message', notify);
