// The signed-in frame: top bar with the connection state, navigation, the
// conversation list on the left and the routed page on the right. On a phone only one
// of the two panes is shown at a time.

import { h, avatar } from '../dom.js';
import { bus, state } from '../store.js';
import { conversationList } from './chats.js';

const STATE_TEXT = {
  connecting: 'Connecting…',
  syncing: 'Catching up…',
  online: 'Connected',
  offline: 'Offline',
  unavailable: 'Real-time unavailable',
  stopped: 'Disconnected',
};

export function shell(root, { onSignOut }) {
  const connection = h('span', { class: 'connection', 'data-testid': 'connection', role: 'status', 'aria-live': 'polite' });
  const requestsBadge = h('span', { class: 'badge', 'data-testid': 'requests-badge', hidden: true });
  const nav = h(
    'nav',
    { class: 'tabs', 'aria-label': 'Sections' },
    h('a', { href: '#/chats', 'data-tab': 'chats', 'data-testid': 'nav-chats' }, 'Chats'),
    h('a', { href: '#/friends', 'data-tab': 'friends', 'data-testid': 'nav-friends' }, 'Friends', requestsBadge),
    h('a', { href: '#/groups', 'data-tab': 'groups', 'data-testid': 'nav-groups' }, 'Groups'),
    h('a', { href: '#/profile', 'data-tab': 'profile', 'data-testid': 'nav-profile' }, 'Profile'),
  );
  const meName = h('span', { class: 'me-name', 'data-testid': 'me-name' });
  const meAvatar = h('span', { class: 'me-avatar' });
  const list = conversationList();
  const main = h('main', { class: 'pane main', id: 'main', tabindex: '-1' });
  const layout = h(
    'div',
    { class: 'layout' },
    h('aside', { class: 'pane side', 'aria-label': 'Conversations' }, list.el),
    main,
  );
  root.replaceChildren(
    h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'brand', href: '#/chats' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'GOIM'),
      connection,
      h('span', { class: 'spacer' }),
      h('a', { class: 'me', href: '#/profile' }, meAvatar, meName),
      h('button', { type: 'button', class: 'ghost', 'data-testid': 'sign-out', onclick: onSignOut }, 'Sign out'),
    ),
    nav,
    layout,
  );

  function renderConnection() {
    const { state: current, detail } = state.connection;
    connection.dataset.state = current;
    let text = STATE_TEXT[current] || current;
    if (current === 'offline' && detail.retryAt && !detail.held) {
      const seconds = Math.max(1, Math.round((detail.retryAt - Date.now()) / 1000));
      text = `Offline — retrying in ${seconds} s`;
    }
    connection.textContent = text;
  }
  function renderMe() {
    if (!state.me) return;
    meName.textContent = state.me.nickname || state.me.username;
    meAvatar.replaceChildren(avatar(state.me, 'sm'));
  }
  function renderBadge() {
    requestsBadge.hidden = state.incomingRequests === 0;
    requestsBadge.textContent = String(state.incomingRequests);
    requestsBadge.setAttribute('aria-label', `${state.incomingRequests} friend requests`);
  }
  const ticker = setInterval(() => state.connection.state === 'offline' && renderConnection(), 1000);
  const offs = [bus.on('connection', renderConnection), bus.on('requests', renderBadge), bus.on('me', renderMe)];
  renderConnection();
  renderMe();
  renderBadge();

  return {
    main,
    /** Marks the tab and the pane to show on narrow screens. */
    route(tab, detail) {
      for (const link of nav.querySelectorAll('a')) {
        if (link.dataset.tab === tab) link.setAttribute('aria-current', 'page');
        else link.removeAttribute('aria-current');
      }
      layout.classList.toggle('show-main', detail);
      list.select(tab === 'chats' ? state.active : null);
    },
    destroy() {
      clearInterval(ticker);
      offs.forEach((off) => off());
      list.destroy();
    },
  };
}
