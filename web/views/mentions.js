// @mentions in a group chat's composer: typing `@` and the start of a name lists the
// members whose nickname or username begins so (or has a word that does); arrows move,
// Enter or Tab picks, Escape closes, a click picks. A pick inserts `@Nickname ` and
// remembers whom it named, so the message carries their ids in `mentions`; a member's
// `@username` typed out in full counts too.

import { avatar, h } from '../dom.js';

const MAX_OPTIONS = 8;
let lists = 0;

/**
 * `candidates()` returns the users that may be mentioned (the group's other members).
 * Returns { el, update, onKey, mentionsIn, reset }: call `update` on input, `onKey` first
 * in the composer's keydown (true when it used the key), `mentionsIn(text)` on send.
 */
export function mentionPicker(input, candidates) {
  const listId = `mention-list-${++lists}`;
  const list = h('ul', { class: 'mention-list', id: listId, role: 'listbox', 'aria-label': 'Members to mention', 'data-testid': 'mention-list', hidden: true });
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', listId);
  input.setAttribute('aria-expanded', 'false');
  let options = [];
  let active = 0;
  /** Where the `@query` being completed sits in the input. */
  let range = null;
  /** `@label` inserted by a pick → user id. */
  const picked = new Map();

  const label = (user) => user.nickname || user.username;

  function matches(user, q) {
    if (!q) return true;
    return [user.nickname, user.username].some((name) => name && name.toLowerCase().split(/\s+/).some((word) => word.startsWith(q)));
  }

  function update() {
    const caret = input.selectionStart ?? input.value.length;
    const match = input.value.slice(0, caret).match(/(^|\s)@([^\s@]{0,32})$/);
    if (!match) return close();
    const q = match[2].toLowerCase();
    const found = candidates().filter((user) => matches(user, q)).slice(0, MAX_OPTIONS);
    if (!found.length) return close();
    range = { start: caret - match[2].length - 1, end: caret };
    const before = options[active];
    options = found;
    active = Math.max(0, before ? found.findIndex((user) => user.id === before.id) : 0);
    render();
  }

  function render() {
    list.replaceChildren(
      ...options.map((user, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            class: `mention-option${i === active ? ' active' : ''}`,
            'aria-selected': String(i === active),
            'data-testid': `mention-option-${user.username}`,
            // Keep the focus (and the caret) in the composer.
            onmousedown: (event) => event.preventDefault(),
            onclick: () => pick(i),
          },
          avatar(user, 'sm'),
          h('span', { class: 'name', text: label(user) }),
          h('span', { class: 'username', text: `@${user.username}` }),
        ),
      ),
    );
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    input.setAttribute('aria-activedescendant', `${listId}-${active}`);
  }

  function close() {
    list.hidden = true;
    list.replaceChildren();
    options = [];
    active = 0;
    range = null;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  }

  function pick(i) {
    const user = options[i];
    if (!user || !range) return;
    const text = `@${label(user)} `;
    input.value = input.value.slice(0, range.start) + text + input.value.slice(range.end);
    const caret = range.start + text.length;
    picked.set(`@${label(user)}`, user.id);
    close();
    input.focus();
    input.setSelectionRange(caret, caret);
    input.dispatchEvent(new Event('input'));
  }

  function onKey(event) {
    if (list.hidden || !options.length || event.isComposing) return false;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      active = (active + (event.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
      render();
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      pick(active);
    } else if (event.key === 'Escape') {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  /** The ids of the members `text` mentions: picked names still in it, typed usernames. */
  function mentionsIn(text) {
    const ids = new Set();
    for (const [name, id] of picked) if (text.includes(name)) ids.add(id);
    const typed = new Set([...text.matchAll(/(?:^|\s)@([\p{L}\p{N}_.-]+)/gu)].map((m) => m[1].toLowerCase()));
    for (const user of candidates()) if (typed.has(user.username.toLowerCase())) ids.add(user.id);
    return [...ids];
  }

  function reset() {
    picked.clear();
    close();
  }

  input.addEventListener('blur', close);
  input.addEventListener('click', update);
  return { el: list, update, onKey, mentionsIn, reset };
}
