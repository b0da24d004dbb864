// Tiny DOM helpers. Every piece of user content goes through text nodes or
// attribute/property setters here — never through innerHTML — so a message, a
// nickname or an announcement can never become markup.

/**
 * Creates an element.
 * props: `class`, `text` (textContent), `dataset` (object), `on<event>` handlers,
 * boolean or value properties (`disabled`, `hidden`, `value`, `checked`, `type`…),
 * anything else becomes an attribute.
 * children: nodes, strings (as text), arrays, or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'innerHTML' || key === 'outerHTML') throw new Error('markup is not allowed');
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key in PROPERTIES) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

const PROPERTIES = { disabled: 1, hidden: 1, value: 1, checked: 1, selected: 1, required: 1, autofocus: 1, src: 1, href: 1 };

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el` with `children`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A safe link for user-supplied URLs: only http(s) is kept. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw, location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** A round avatar: the image when there is an https URL, else the initial. */
export function avatar(user, size = 'md') {
  const name = (user && (user.nickname || user.username || user.name)) || '?';
  const url = user && user.avatar_url && safeUrl(user.avatar_url);
  if (url && url.startsWith('https:')) {
    return h('img', { class: `avatar avatar-${size}`, src: url, alt: '', referrerpolicy: 'no-referrer', loading: 'lazy' });
  }
  return h('span', { class: `avatar avatar-${size} avatar-initial`, 'aria-hidden': 'true', text: initial(name) });
}

function initial(name) {
  const first = Array.from(name.trim())[0] || '?';
  return first.toUpperCase();
}

/** A presence dot for a user id, filled in by the caller. */
export function presenceDot(online) {
  return h('span', {
    class: `presence ${online ? 'online' : 'offline'}`,
    title: online ? 'online' : 'offline',
    role: 'img',
    'aria-label': online ? 'online' : 'offline',
  });
}

/** "12:03" today, "Mon 12:03" this week, else a date. */
export function shortTime(when) {
  // ISO 8601 text, or Unix seconds (presence).
  const date = typeof when === 'number' ? new Date(when * 1000) : new Date(when);
  if (Number.isNaN(date.getTime())) return '';
  const now = new Date();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === now.toDateString()) return time;
  if (now - date < 6 * 24 * 3600 * 1000) return `${date.toLocaleDateString([], { weekday: 'short' })} ${time}`;
  return date.toLocaleDateString();
}

/** A status line that shows errors and confirmations of a form. */
export function notice() {
  const el = h('p', { class: 'notice', role: 'status', 'aria-live': 'polite', hidden: true });
  return {
    el,
    error(err) {
      el.hidden = false;
      el.className = 'notice error';
      el.setAttribute('role', 'alert');
      el.textContent = describeError(err);
    },
    ok(text) {
      el.hidden = false;
      el.className = 'notice ok';
      el.setAttribute('role', 'status');
      el.textContent = text;
    },
    clear() {
      el.hidden = true;
      el.textContent = '';
    },
  };
}

/** The text shown for an error: the API's message, with the field when there is one. */
export function describeError(err) {
  if (!err) return 'Something went wrong.';
  if (err.field && err.message && !err.message.toLowerCase().startsWith(err.field)) return `${err.field}: ${err.message}`;
  return err.message || String(err);
}

/** Runs `fn` on submit with the button disabled meanwhile; errors go to `status`. */
export function onSubmit(form, status, fn) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => (b.disabled = true));
    status && status.clear();
    try {
      await fn(new FormData(form));
    } catch (err) {
      if (status) status.error(err);
      else console.error(err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}
