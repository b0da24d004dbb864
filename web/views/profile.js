// The own profile: nickname, avatar URL, birthday and bio (PATCH /api/v1/me).

import { api } from '../api.js';
import { avatar, h, notice, onSubmit } from '../dom.js';
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
  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'page-head' }, h('a', { href: '#/chats', class: 'back', 'aria-label': 'Back to conversations' }, '‹'), h('h2', {}, 'Your profile')),
      h('section', { class: 'card profile' }, picture, form),
    ),
  );
}
