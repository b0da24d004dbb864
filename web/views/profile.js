// The own profile: nickname, avatar URL, birthday and bio (PATCH /api/v1/me); the
// password; desktop notifications in this browser; the devices signed in, each of
// which can be signed out.

import { api } from '../api.js';
import { avatar, h, notice, onSubmit, shortTime } from '../dom.js';
import { disableNotifications, enableNotifications, notificationState } from '../notify.js';
import { bus, remember, state } from '../store.js';

export function profileView(root) {
  const status = notice();
  const me = state.me;
  const picture = h('span', { class: 'picture large' }, avatar(me, 'lg'));
  const form = h(
    'form',
    { class: 'stack-form' },
    h('p', { class: 'hint' }, 'Username: ', h('strong', { text: `@${me.username}` })),
    h('label', { class: 'field' }, 'Nickname', h('input', { name: 'nickname', value: me.nickname, required: true, maxlength: '64', 'data-testid': 'profile-nickname' })),
    h('label', { class: 'field' }, 'Avatar URL (https)', h('input', { name: 'avatar_url', type: 'url', value: me.avatar_url || '', placeholder: 'https://…', 'data-testid': 'profile-avatar' })),
    h('label', { class: 'field' }, 'Birthday (only you see it)', h('input', { name: 'birthday', type: 'date', value: me.birthday || '', 'data-testid': 'profile-birthday' })),
    h('label', { class: 'field' }, 'Bio', h('textarea', { name: 'bio', rows: '3', maxlength: '500', value: me.bio || '', 'data-testid': 'profile-bio' })),
    status.el,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'profile-save' }, 'Save profile'),
  );
  onSubmit(form, status, async (data) => {
    const current = state.me;
    const change = {};
    const nickname = String(data.get('nickname')).trim();
    const avatarUrl = String(data.get('avatar_url')).trim();
    const birthday = String(data.get('birthday'));
    const bio = String(data.get('bio'));
    if (nickname !== current.nickname) change.nickname = nickname;
    if (avatarUrl !== (current.avatar_url || '')) change.avatar_url = avatarUrl || null;
    if (birthday !== (current.birthday || '')) change.birthday = birthday || null;
    if (bio !== (current.bio || '')) change.bio = bio || null;
    if (Object.keys(change).length === 0) {
      status.ok('Nothing to save.');
      return;
    }
    state.me = await api('PATCH', '/me', change);
    remember(state.me);
    picture.replaceChildren(avatar(state.me, 'lg'));
    bus.emit('me');
    status.ok('Profile saved.');
  });

  const passwordStatus = notice();
  const passwordForm = h(
    'form',
    { class: 'stack-form' },
    h('label', { class: 'field' }, 'Current password', h('input', { name: 'current', type: 'password', required: true, autocomplete: 'current-password', 'data-testid': 'password-current' })),
    h('label', { class: 'field' }, 'New password (8 or more characters)', h('input', { name: 'new', type: 'password', required: true, minlength: '8', maxlength: '256', autocomplete: 'new-password', 'data-testid': 'password-new' })),
    passwordStatus.el,
    h('button', { type: 'submit', 'data-testid': 'password-save' }, 'Change password'),
  );
  onSubmit(passwordForm, passwordStatus, async (data) => {
    await api('POST', '/auth/password', { current_password: String(data.get('current')), new_password: String(data.get('new')) });
    passwordForm.reset();
    passwordStatus.ok('Password changed. Every other device is signed out.');
    loadDevices().catch((err) => devicesStatus.error(err));
  });

  const devicesStatus = notice();
  const devices = h('ul', { class: 'people', 'data-testid': 'devices' });
  async function loadDevices() {
    const sessions = await api('GET', '/me/sessions');
    devices.replaceChildren(
      ...sessions.map((session) =>
        h(
          'li',
          { class: 'person', 'data-testid': session.current ? 'device-current' : 'device' },
          h(
            'span',
            { class: 'who' },
            h('span', { class: 'name', text: session.device_name || session.user_agent.slice(0, 60) || 'A device' }),
            h('span', { class: 'username', text: session.current ? 'this device' : `last used ${shortTime(session.last_used_at)}` }),
          ),
          session.current
            ? null
            : h('button', {
                type: 'button',
                'data-testid': 'device-sign-out',
                text: 'Sign out',
                onclick: async () => {
                  try {
                    await api('DELETE', `/me/sessions/${session.id}`);
                    await loadDevices();
                  } catch (err) {
                    devicesStatus.error(err);
                  }
                },
              }),
        ),
      ),
    );
  }
  loadDevices().catch((err) => devicesStatus.error(err));

  // Desktop notifications: the browser is asked on this click, never before.
  const NOTIFICATION_TEXT = {
    on: 'On: new messages in other conversations show a notification, unless you muted them.',
    off: 'Off. Turn them on to hear about new messages while GOIM is in the background.',
    denied: 'Blocked by this browser. Allow notifications for this site in its settings to turn them on.',
    unsupported: 'Not available in this browser.',
  };
  const notifyToggle = h('input', { type: 'checkbox', 'data-testid': 'notifications-toggle' });
  const notifyState = h('p', { class: 'hint', 'data-testid': 'notifications-state', 'aria-live': 'polite' });
  function renderNotifications(current = notificationState()) {
    notifyToggle.checked = current === 'on';
    notifyToggle.disabled = current === 'unsupported' || current === 'denied';
    notifyState.textContent = NOTIFICATION_TEXT[current];
    notifyState.dataset.state = current;
  }
  notifyToggle.addEventListener('change', async () => {
    notifyToggle.disabled = true;
    renderNotifications(notifyToggle.checked ? await enableNotifications() : disableNotifications());
  });
  renderNotifications();

  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'page-head' }, h('a', { href: '#/chats', class: 'back', 'aria-label': 'Back to conversations' }, '‹'), h('h2', {}, 'Your profile')),
      h('section', { class: 'card profile' }, picture, form),
      h('section', { class: 'card' }, h('h3', {}, 'Password'), passwordForm),
      h(
        'section',
        { class: 'card' },
        h('h3', {}, 'Notifications'),
        h('label', { class: 'check' }, notifyToggle, 'Desktop notifications'),
        notifyState,
      ),
      h('section', { class: 'card' }, h('h3', {}, 'Devices'), devicesStatus.el, devices),
    ),
  );
}
