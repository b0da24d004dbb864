// Entry point: restores the tab's session (if any), then shows either the sign-in
// page or the signed-in shell, and routes `#/…` to the page on the right.
//
// Routes: #/chats, #/chats/<conversation id>, #/chats/<id>/m/<seq> (a found message),
// #/friends, #/groups, #/groups/<id>,
// #/profile.

import { logout, onSessionChange, restore } from './api.js';
import { h } from './dom.js';
import './notify.js';
import { bus, debug, start, state, stop, unread, unreadMentions } from './store.js';
import { authView } from './views/auth.js';
import { chatView } from './views/chat.js';
import { friendsView } from './views/friends.js';
import { groupView, groupsView } from './views/groups.js';
import { profileView } from './views/profile.js';
import { shell } from './views/shell.js';

const root = document.getElementById('app');
let frame = null;
let cleanup = null;

const ROUTES = [
  [/^#\/chats\/(\d+)(?:\/m\/(\d+))?$/, 'chats', (main, m) => chatView(main, Number(m[1]), m[2] ? Number(m[2]) : null)],
  [/^#\/friends$/, 'friends', (main) => friendsView(main)],
  [/^#\/groups\/(\d+)$/, 'groups', (main, m) => groupView(main, Number(m[1]))],
  [/^#\/groups$/, 'groups', (main) => groupsView(main)],
  [/^#\/profile$/, 'profile', (main) => profileView(main)],
];

function route() {
  if (!frame) return;
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || '#/chats';
  for (const [pattern, tab, render] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      cleanup = render(frame.main, match) || null;
      frame.route(tab, true);
      return;
    }
  }
  frame.main.replaceChildren(
    h('div', { class: 'placeholder' }, h('p', {}, 'Pick a conversation, or find friends and groups to start one.')),
  );
  frame.route('chats', false);
}

async function enter() {
  root.replaceChildren(h('p', { class: 'boot' }, 'Loading…'));
  try {
    await start();
  } catch (err) {
    root.replaceChildren(h('p', { class: 'boot error', role: 'alert', text: `Could not load your data: ${err.message}` }));
    return;
  }
  frame = shell(root, {
    onSignOut: async () => {
      await logout();
    },
  });
  route();
}

/** "(3) GOIM" while 3 messages wait unread (of a muted conversation only those that
 * mention you), so a tab in the background still says so. */
function showUnreadInTitle() {
  let total = 0;
  for (const conversation of state.conversations.values()) {
    total += conversation.muted ? unreadMentions(conversation) : unread(conversation);
  }
  document.title = total > 0 ? `(${total}) GOIM` : 'GOIM';
}
bus.on('conversations', showUnreadInTitle);

function leave() {
  document.title = 'GOIM';
  if (cleanup) cleanup();
  cleanup = null;
  if (frame) frame.destroy();
  frame = null;
  stop();
  if (location.hash) history.replaceState(null, '', location.pathname);
  authView(root);
}

window.addEventListener('hashchange', route);
onSessionChange((signedIn) => (signedIn ? enter() : leave()));

// For tests and debugging from the console: `goim.dropConnection()` closes the
// WebSocket and keeps it closed until `goim.restoreConnection()`.
window.goim = Object.freeze({ ...debug, signedIn: () => state.me !== null });

restore()
  .then((resumed) => {
    if (!resumed) authView(root);
  })
  .catch((err) => {
    authView(root);
    console.warn('could not resume the session', err);
  });
