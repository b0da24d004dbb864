// Sign in and create an account. Errors are the API's own messages.

import { login, register } from '../api.js';
import { h, notice, onSubmit } from '../dom.js';

export function authView(root) {
  let mode = 'login';
  const status = notice();
  const title = h('h1', { id: 'auth-title' });
  const nicknameRow = h(
    'label',
    { class: 'field' },
    'Nickname (optional)',
    h('input', { name: 'nickname', autocomplete: 'nickname', maxlength: '64', 'data-testid': 'auth-nickname' }),
  );
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'auth-submit' });
  const toggle = h('button', { type: 'button', class: 'link', 'data-testid': 'auth-toggle', onclick: () => setMode(mode === 'login' ? 'register' : 'login') });
  const hint = h('p', { class: 'hint' });
  const form = h(
    'form',
    { class: 'auth-form', 'aria-labelledby': 'auth-title', novalidate: true },
    title,
    h('label', { class: 'field' }, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true, 'data-testid': 'auth-username' })),
    h('label', { class: 'field' }, 'Password', h('input', { name: 'password', type: 'password', required: true, 'data-testid': 'auth-password' })),
    nicknameRow,
    hint,
    status.el,
    submit,
    h('p', { class: 'switch' }, toggle),
  );

  function setMode(next) {
    mode = next;
    status.clear();
    const registering = mode === 'register';
    title.textContent = registering ? 'Create an account' : 'Sign in to GOIM';
    submit.textContent = registering ? 'Create account' : 'Sign in';
    toggle.textContent = registering ? 'I already have an account' : 'Create an account';
    nicknameRow.hidden = !registering;
    hint.hidden = !registering;
    hint.textContent = 'Usernames: 3–32 letters, digits, “_”, “.” or “-”. Passwords: at least 8 characters.';
    form.password.autocomplete = registering ? 'new-password' : 'current-password';
  }

  onSubmit(form, status, async (data) => {
    const username = String(data.get('username')).trim();
    const password = String(data.get('password'));
    if (mode === 'register') await register(username, password, String(data.get('nickname') || '').trim());
    else await login(username, password);
    // The session listener in app.js takes over from here.
  });

  setMode('login');
  root.replaceChildren(h('main', { class: 'auth' }, h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'GOIM'), form));
  form.username.focus();
}
