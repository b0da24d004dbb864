// Friends: find people, send and answer friend requests, the friends list with
// presence, a way into the direct chat, and blocking.

import { api, query } from '../api.js';
import { avatar, h, notice, onSubmit, presenceDot } from '../dom.js';
import { bus, countIncomingRequests, isOnline, loadFriends, openDirect, state } from '../store.js';

export function friendsView(root) {
  const searchStatus = notice();
  const results = h('ul', { class: 'people', 'data-testid': 'search-results' });
  const searchForm = h(
    'form',
    { class: 'inline-form', role: 'search' },
    h('input', { name: 'q', type: 'search', placeholder: 'Username or nickname', 'aria-label': 'Search people', required: true, maxlength: '64', 'data-testid': 'user-search' }),
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'user-search-submit' }, 'Search'),
  );
  const incoming = h('ul', { class: 'people', 'data-testid': 'incoming-requests' });
  const outgoing = h('ul', { class: 'people', 'data-testid': 'outgoing-requests' });
  const friends = h('ul', { class: 'people', 'data-testid': 'friends' });
  const blocked = h('ul', { class: 'people', 'data-testid': 'blocked' });
  const blockedStatus = notice();
  const requestsStatus = notice();
  const friendsStatus = notice();

  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'page-head' }, h('a', { href: '#/chats', class: 'back', 'aria-label': 'Back to conversations' }, '‹'), h('h2', {}, 'Friends')),
      h('section', { class: 'card' }, h('h3', {}, 'Find people'), searchForm, searchStatus.el, results),
      h('section', { class: 'card' }, h('h3', {}, 'Friend requests'), requestsStatus.el, h('h4', {}, 'Received'), incoming, h('h4', {}, 'Sent'), outgoing),
      h('section', { class: 'card' }, h('h3', {}, 'Your friends'), friendsStatus.el, friends),
      h('section', { class: 'card' }, h('h3', {}, 'Blocked'), blockedStatus.el, blocked),
    ),
  );

  /** Blocked users, each with a way back. Blocking ends a friendship and its requests. */
  async function loadBlocked() {
    const page = await api('GET', `/blocks${query({ limit: 100 })}`);
    blocked.replaceChildren(
      ...page.items.map((entry) => {
        const unblock = h('button', { type: 'button', class: 'small', 'data-testid': `unblock-${entry.user.username}` }, 'Unblock');
        unblock.onclick = async () => {
          unblock.disabled = true;
          try {
            await api('DELETE', `/blocks/${entry.user.id}`);
            await loadBlocked();
          } catch (err) {
            blockedStatus.error(err);
            unblock.disabled = false;
          }
        };
        return person(entry.user, unblock);
      }),
    );
    if (!page.items.length) blocked.append(h('li', { class: 'empty' }, 'Nobody.'));
  }

  onSubmit(searchForm, searchStatus, async (data) => {
    const q = String(data.get('q')).trim();
    const page = await api('GET', `/users${query({ q, limit: 20 })}`);
    const friendIds = new Set(state.friends.map((f) => f.user.id));
    results.replaceChildren(
      ...page.items
        .filter((user) => user.id !== state.me.id)
        .map((user) => {
          const add = h('button', { type: 'button', class: 'small', 'data-testid': `add-friend-${user.username}` }, 'Add friend');
          add.addEventListener('click', async () => {
            add.disabled = true;
            try {
              const answer = await api('POST', '/friend-requests', { to_user_id: user.id });
              searchStatus.ok(answer.status === 'accepted' ? `You and ${user.nickname} are now friends.` : `Friend request sent to ${user.nickname}.`);
              add.textContent = answer.status === 'accepted' ? 'Friends' : 'Requested';
              await Promise.all([loadRequests(), answer.status === 'accepted' ? loadFriends() : null]);
            } catch (err) {
              searchStatus.error(err);
              add.disabled = false;
            }
          });
          const block = h('button', { type: 'button', class: 'small ghost', 'data-testid': `block-${user.username}` }, 'Block');
          block.addEventListener('click', async () => {
            if (!window.confirm(`Block ${user.nickname}? Friendship and requests between you end.`)) return;
            block.disabled = true;
            try {
              await api('PUT', `/blocks/${user.id}`);
              searchStatus.ok(`${user.nickname} is blocked.`);
              await Promise.all([loadBlocked(), loadFriends(), loadRequests()]);
            } catch (err) {
              searchStatus.error(err);
              block.disabled = false;
            }
          });
          return person(user, friendIds.has(user.id) ? h('span', { class: 'tag' }, 'Friend') : add, block);
        }),
    );
    if (results.children.length === 0) searchStatus.ok('Nobody found.');
  });

  function person(user, ...actions) {
    return h(
      'li',
      { class: 'person', 'data-testid': `person-${user.username}` },
      h('span', { class: 'picture' }, avatar(user)),
      h('span', { class: 'who' }, h('span', { class: 'name', text: user.nickname || user.username }), h('span', { class: 'username', text: `@${user.username}` })),
      h('span', { class: 'person-actions' }, actions),
    );
  }

  async function act(button, path, done) {
    button.disabled = true;
    try {
      await api('POST', path);
      await done();
    } catch (err) {
      requestsStatus.error(err);
      button.disabled = false;
    }
  }

  async function loadRequests() {
    const [received, sent] = await Promise.all([
      countIncomingRequests(),
      api('GET', `/friend-requests${query({ direction: 'outgoing', limit: 100 })}`),
    ]);
    incoming.replaceChildren(
      ...received.items.map((request) => {
        const accept = h('button', { type: 'button', class: 'primary small', 'data-testid': `accept-${request.user.username}` }, 'Accept');
        const decline = h('button', { type: 'button', class: 'small', 'data-testid': `decline-${request.user.username}` }, 'Decline');
        accept.onclick = () => act(accept, `/friend-requests/${request.id}/accept`, () => Promise.all([loadRequests(), loadFriends()]));
        decline.onclick = () => act(decline, `/friend-requests/${request.id}/decline`, loadRequests);
        const item = person(request.user, accept, decline);
        if (request.note) item.querySelector('.who').append(h('span', { class: 'note', text: `“${request.note}”` }));
        return item;
      }),
    );
    if (!received.items.length) incoming.append(h('li', { class: 'empty' }, 'No requests.'));
    outgoing.replaceChildren(
      ...sent.items.map((request) => {
        const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
        cancel.onclick = () => act(cancel, `/friend-requests/${request.id}/cancel`, loadRequests);
        return person(request.user, h('span', { class: 'tag' }, 'Pending'), cancel);
      }),
    );
    if (!sent.items.length) outgoing.append(h('li', { class: 'empty' }, 'No requests.'));
  }

  function renderFriends() {
    friends.replaceChildren(
      ...state.friends.map((friend) => {
        const user = friend.user;
        const message = h('button', { type: 'button', class: 'primary small', 'data-testid': `message-${user.username}` }, 'Message');
        message.addEventListener('click', async () => {
          message.disabled = true;
          try {
            location.hash = `#/chats/${await openDirect(user.id)}`;
          } catch (err) {
            friendsStatus.error(err);
            message.disabled = false;
          }
        });
        const remove = h('button', { type: 'button', class: 'small ghost' }, 'Remove');
        remove.addEventListener('click', async () => {
          if (!window.confirm(`Remove ${user.nickname} from your friends?`)) return;
          try {
            await api('DELETE', `/friends/${user.id}`);
            await loadFriends();
          } catch (err) {
            friendsStatus.error(err);
          }
        });
        const item = person(user, message, remove);
        item.querySelector('.picture').append(presenceDot(isOnline(user.id)));
        item.dataset.online = String(isOnline(user.id));
        if (friend.remark) item.querySelector('.who').append(h('span', { class: 'note', text: friend.remark }));
        return item;
      }),
    );
    if (!state.friends.length) friends.append(h('li', { class: 'empty' }, 'No friends yet — search for someone above.'));
  }

  const offs = [bus.on('friends', renderFriends), bus.on('presence', renderFriends), bus.on('friend_requests', () => loadRequests().catch(() => {}))];
  renderFriends();
  loadRequests().catch((err) => requestsStatus.error(err));
  loadBlocked().catch((err) => blockedStatus.error(err));
  return () => offs.forEach((off) => off());
}
