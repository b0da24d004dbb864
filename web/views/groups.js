// Groups: my groups, creating and joining one, invitations; a group's page with its
// announcement, members and roles, join requests for admins, and the way into its chat.
// From the member list admins mute (for a while), unmute and remove members; the owner
// also promotes, hands over ownership and disbands the group.

import { api, query } from '../api.js';
import { avatar, h, notice, onSubmit, shortTime } from '../dom.js';
import { bus, isMutedMember, loadConversations, openGroupConversation, remember, state } from '../store.js';

const POLICY_TEXT = { open: 'Anyone can join', approval: 'Admins approve who joins', invite_only: 'Invitation only' };
const ROLE_TEXT = { owner: 'Owner', admin: 'Admin', member: 'Member' };
const MUTE_CHOICES = [
  [3600, '1 hour'],
  [8 * 3600, '8 hours'],
  [24 * 3600, '1 day'],
  [7 * 24 * 3600, '1 week'],
];

export function groupsView(root) {
  const mine = h('ul', { class: 'groups', 'data-testid': 'my-groups' });
  const invitations = h('ul', { class: 'people', 'data-testid': 'group-invitations' });
  const createStatus = notice();
  const joinStatus = notice();
  const listStatus = notice();

  const createForm = h(
    'form',
    { class: 'stack-form' },
    h('label', { class: 'field' }, 'Name', h('input', { name: 'name', required: true, maxlength: '64', 'data-testid': 'group-name' })),
    h(
      'label',
      { class: 'field' },
      'Who can join',
      h(
        'select',
        { name: 'join_policy', 'data-testid': 'group-policy' },
        Object.entries(POLICY_TEXT).map(([value, text]) => h('option', { value }, text)),
      ),
    ),
    h('label', { class: 'field' }, 'Announcement (optional)', h('textarea', { name: 'announcement', rows: '2', maxlength: '2000' })),
    createStatus.el,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'group-create' }, 'Create group'),
  );
  onSubmit(createForm, createStatus, async (data) => {
    const body = { name: String(data.get('name')).trim(), join_policy: String(data.get('join_policy')) };
    const announcement = String(data.get('announcement') || '').trim();
    if (announcement) body.announcement = announcement;
    const group = await api('POST', '/groups', body);
    await loadConversations();
    location.hash = `#/groups/${group.id}`;
  });

  const joinForm = h(
    'form',
    { class: 'inline-form' },
    h('input', { name: 'id', inputmode: 'numeric', pattern: '[0-9]+', placeholder: 'Group number', 'aria-label': 'Group number', required: true, 'data-testid': 'join-group-id' }),
    h('button', { type: 'submit', 'data-testid': 'join-group' }, 'Join'),
  );
  onSubmit(joinForm, joinStatus, async (data) => {
    const id = Number(String(data.get('id')).trim());
    if (!Number.isInteger(id) || id <= 0) throw new Error('Enter the group’s number.');
    const answer = await api('POST', `/groups/${id}/join`, {});
    if (answer.status === 'joined') {
      await Promise.all([loadConversations(), load()]);
      location.hash = `#/groups/${id}`;
    } else {
      joinStatus.ok('Request sent — an admin has to approve it.');
    }
  });

  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'page-head' }, h('a', { href: '#/chats', class: 'back', 'aria-label': 'Back to conversations' }, '‹'), h('h2', {}, 'Groups')),
      h('section', { class: 'card' }, h('h3', {}, 'Your groups'), listStatus.el, mine),
      h('section', { class: 'card' }, h('h3', {}, 'Invitations'), invitations),
      h('section', { class: 'card' }, h('h3', {}, 'New group'), createForm),
      h('section', { class: 'card' }, h('h3', {}, 'Join a group'), joinForm, joinStatus.el),
    ),
  );

  async function load() {
    const [groups, invites] = await Promise.all([api('GET', `/me/groups${query({ limit: 100 })}`), api('GET', `/me/group-invitations${query({ limit: 100 })}`)]);
    mine.replaceChildren(
      ...groups.items.map((group) =>
        h(
          'li',
          {},
          h(
            'a',
            { class: 'group-link', href: `#/groups/${group.id}`, 'data-testid': `group-${group.id}` },
            avatar({ nickname: group.name, avatar_url: group.avatar_url }),
            h('span', { class: 'who' }, h('span', { class: 'name', text: group.name }), h('span', { class: 'username', text: `#${group.id} · ${group.member_count} members · ${ROLE_TEXT[group.my_role] || ''}` })),
          ),
        ),
      ),
    );
    if (!groups.items.length) mine.append(h('li', { class: 'empty' }, 'You are not in any group yet.'));
    invitations.replaceChildren(
      ...invites.items.map((invite) => {
        const accept = h('button', { type: 'button', class: 'primary small' }, 'Join');
        const decline = h('button', { type: 'button', class: 'small' }, 'Decline');
        const answer = (verb) => async () => {
          accept.disabled = decline.disabled = true;
          try {
            await api('POST', `/group-invitations/${invite.id}/${verb}`);
            if (verb === 'accept') await loadConversations();
            await load();
          } catch (err) {
            listStatus.error(err);
            accept.disabled = decline.disabled = false;
          }
        };
        accept.onclick = answer('accept');
        decline.onclick = answer('decline');
        return h(
          'li',
          { class: 'person' },
          h('span', { class: 'who' }, h('span', { class: 'name', text: invite.group_name }), h('span', { class: 'username', text: `invited by ${invite.inviter_nickname}` })),
          h('span', { class: 'person-actions' }, accept, decline),
        );
      }),
    );
    if (!invites.items.length) invitations.append(h('li', { class: 'empty' }, 'No invitations.'));
  }

  const off = bus.on('groups', () => load().catch(() => {}));
  load().catch((err) => listStatus.error(err));
  return off;
}

export function groupView(root, id) {
  const status = notice();
  const name = h('h2', { 'data-testid': 'group-title' }, 'Group');
  const facts = h('p', { class: 'facts', 'data-testid': 'group-facts' });
  const openChat = h('button', { type: 'button', class: 'primary', 'data-testid': 'open-group-chat' }, 'Open chat');
  const leave = h('button', { type: 'button', class: 'ghost' }, 'Leave group');
  const disband = h('button', { type: 'button', class: 'ghost danger', 'data-testid': 'disband-group' }, 'Disband group');
  const announcement = h('p', { class: 'announcement', 'data-testid': 'announcement' });
  const announcementMeta = h('p', { class: 'hint' });
  const announcementForm = h(
    'form',
    { class: 'stack-form', hidden: true },
    h('label', { class: 'field' }, 'Edit announcement', h('textarea', { name: 'announcement', rows: '3', maxlength: '2000', 'data-testid': 'announcement-input' })),
    h('button', { type: 'submit', 'data-testid': 'announcement-save' }, 'Save announcement'),
  );
  const membersTitle = h('h3', { 'data-testid': 'member-count' }, 'Members');
  const members = h('ul', { class: 'people', 'data-testid': 'group-members' });
  const requestsCard = h('section', { class: 'card', hidden: true }, h('h3', {}, 'Join requests'));
  const requests = h('ul', { class: 'people', 'data-testid': 'join-requests' });
  requestsCard.append(requests);
  const inviteSelect = h('select', { name: 'user', 'aria-label': 'Friend to invite', 'data-testid': 'invite-select' });
  const inviteForm = h('form', { class: 'inline-form' }, inviteSelect, h('button', { type: 'submit', 'data-testid': 'invite-submit' }, 'Invite'));
  const inviteCard = h('section', { class: 'card' }, h('h3', {}, 'Invite a friend'), inviteForm);
  let group = null;

  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'page-head' }, h('a', { href: '#/groups', class: 'back', 'aria-label': 'Back to groups' }, '‹'), name),
      status.el,
      h('section', { class: 'card' }, facts, h('div', { class: 'button-row' }, openChat, leave, disband)),
      h('section', { class: 'card' }, h('h3', {}, 'Announcement'), announcement, announcementMeta, announcementForm),
      requestsCard,
      h('section', { class: 'card' }, membersTitle, members),
      inviteCard,
    ),
  );

  openChat.onclick = async () => {
    try {
      location.hash = `#/chats/${await openGroupConversation(id)}`;
    } catch (err) {
      status.error(err);
    }
  };
  leave.onclick = async () => {
    if (!window.confirm('Leave this group?')) return;
    try {
      await api('POST', `/groups/${id}/leave`);
      await loadConversations();
      location.hash = '#/groups';
    } catch (err) {
      status.error(err);
    }
  };
  disband.onclick = async () => {
    if (!window.confirm(`Disband “${group.name}”? Nobody can write in it any more, and this cannot be undone.`)) return;
    try {
      await api('DELETE', `/groups/${id}`);
      status.ok('The group was disbanded.');
      await load();
    } catch (err) {
      status.error(err);
    }
  };
  onSubmit(announcementForm, status, async (data) => {
    group = await api('PATCH', `/groups/${id}`, { announcement: String(data.get('announcement')) });
    status.ok('Announcement saved.');
    render();
  });
  onSubmit(inviteForm, status, async (data) => {
    const userId = Number(data.get('user'));
    if (!userId) throw new Error('Choose a friend to invite.');
    await api('POST', `/groups/${id}/invitations`, { user_id: userId });
    status.ok('Invitation sent.');
  });

  const isAdmin = () => group && (group.my_role === 'owner' || group.my_role === 'admin');

  function render() {
    if (!group) return;
    name.textContent = group.name;
    facts.textContent = `#${group.id} · ${POLICY_TEXT[group.join_policy] || group.join_policy} · ${group.member_count} of ${group.member_limit} members · you are ${ROLE_TEXT[group.my_role] || 'not a member'}${group.disbanded_at ? ' · disbanded' : ''}`;
    membersTitle.textContent = `Members (${group.member_count})`;
    announcement.textContent = group.announcement || 'No announcement.';
    announcement.classList.toggle('empty', !group.announcement);
    announcementMeta.textContent = group.announcement_updated_at ? `Updated ${shortTime(group.announcement_updated_at)}` : '';
    announcementForm.hidden = !isAdmin() || Boolean(group.disbanded_at);
    if (!announcementForm.hidden && document.activeElement !== announcementForm.announcement) announcementForm.announcement.value = group.announcement || '';
    openChat.hidden = !group.my_role;
    leave.hidden = !group.my_role || Boolean(group.disbanded_at);
    disband.hidden = group.my_role !== 'owner' || Boolean(group.disbanded_at);
    requestsCard.hidden = !isAdmin() || group.join_policy !== 'approval';
    const memberIds = new Set([...members.querySelectorAll('[data-user-id]')].map((el) => Number(el.dataset.userId)));
    // Re-rendered on every member change: keep the friend already chosen.
    const chosen = inviteSelect.value;
    inviteSelect.replaceChildren(
      h('option', { value: '' }, 'Choose a friend…'),
      ...state.friends.filter((f) => !memberIds.has(f.user.id)).map((f) => h('option', { value: String(f.user.id), text: f.user.nickname || f.user.username })),
    );
    if ([...inviteSelect.options].some((option) => option.value === chosen)) inviteSelect.value = chosen;
    inviteCard.hidden = !group.my_role || Boolean(group.disbanded_at);
  }

  /** The owner/admin actions on one member's row (none on the own row or in a disbanded group). */
  function memberActions(member, row) {
    const actions = [];
    if (!group || group.disbanded_at || member.user.id === state.me.id) return actions;
    const name = member.user.nickname || member.user.username;
    const username = member.user.username;
    const iAmOwner = group.my_role === 'owner';
    if (iAmOwner && member.role !== 'owner') {
      const next = member.role === 'admin' ? 'member' : 'admin';
      const button = h('button', { type: 'button', class: 'small ghost', 'data-testid': `role-${username}` }, next === 'admin' ? 'Make admin' : 'Remove admin');
      button.onclick = () => change(() => api('PUT', `/groups/${id}/members/${member.user.id}/role`, { role: next }));
      actions.push(button);
    }
    // Muting and removing follow one rule: admins act on members, the owner on admins too.
    const canModerate = member.role === 'member' ? isAdmin() : member.role === 'admin' && iAmOwner;
    if (canModerate) {
      if (isMutedMember(member)) {
        const unmute = h('button', { type: 'button', class: 'small ghost', 'data-testid': `unmute-${username}` }, 'Unmute');
        unmute.onclick = () => change(() => api('DELETE', `/groups/${id}/members/${member.user.id}/mute`));
        actions.push(unmute);
      } else {
        const mute = h('button', { type: 'button', class: 'small ghost', 'data-testid': `mute-${username}`, 'aria-expanded': 'false' }, 'Mute…');
        mute.onclick = () => toggleMuteForm(row, member, mute);
        actions.push(mute);
      }
      const kick = h('button', { type: 'button', class: 'small ghost danger', 'data-testid': `kick-${username}` }, 'Remove');
      kick.onclick = () => {
        if (window.confirm(`Remove ${name} from the group?`)) change(() => api('DELETE', `/groups/${id}/members/${member.user.id}`), `${name} was removed.`);
      };
      actions.push(kick);
    }
    if (iAmOwner) {
      const transfer = h('button', { type: 'button', class: 'small ghost', 'data-testid': `transfer-${username}` }, 'Make owner');
      transfer.onclick = () => {
        if (window.confirm(`Make ${name} the owner of the group? You will become an admin.`)) {
          change(() => api('POST', `/groups/${id}/transfer`, { user_id: member.user.id }), `${name} owns the group now.`);
        }
      };
      actions.push(transfer);
    }
    return actions;
  }

  /** A small form under the member's row: for how long, then Mute. */
  function toggleMuteForm(row, member, button) {
    const open = row.querySelector('.mute-form');
    if (open) {
      open.remove();
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    const duration = h(
      'select',
      { name: 'duration', 'aria-label': `Mute ${member.user.nickname || member.user.username} for`, 'data-testid': 'mute-duration' },
      MUTE_CHOICES.map(([secs, text]) => h('option', { value: String(secs) }, text)),
    );
    const form = h('form', { class: 'inline-form mute-form' }, duration, h('button', { type: 'submit', class: 'small primary', 'data-testid': 'mute-submit' }, 'Mute'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      change(() => api('PUT', `/groups/${id}/members/${member.user.id}/mute`, { duration_secs: Number(duration.value) }));
    });
    row.append(form);
    button.setAttribute('aria-expanded', 'true');
    duration.focus();
  }

  async function loadMembers() {
    const page = await api('GET', `/groups/${id}/members${query({ limit: 100 })}`);
    members.replaceChildren(
      ...page.items.map((member) => {
        remember(member.user);
        const muted = isMutedMember(member);
        const row = h(
          'li',
          { class: 'person member', 'data-user-id': String(member.user.id), 'data-testid': `member-${member.user.username}`, 'data-muted': muted ? 'true' : null },
          h('span', { class: 'picture' }, avatar(member.user)),
          h(
            'span',
            { class: 'who' },
            h('span', { class: 'name', text: member.user.nickname || member.user.username }),
            h('span', { class: 'username', text: `@${member.user.username}` }),
            muted ? h('span', { class: 'note', 'data-testid': 'muted-until', text: `Muted until ${new Date(member.muted_until).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}` }) : null,
          ),
          h('span', { class: `role role-${member.role}`, text: ROLE_TEXT[member.role] || member.role }),
        );
        row.append(h('span', { class: 'person-actions' }, memberActions(member, row)));
        return row;
      }),
    );
    if (page.next_cursor) members.append(h('li', { class: 'empty' }, `Showing the first ${page.items.length} members.`));
  }

  async function loadRequests() {
    if (requestsCard.hidden) return;
    const page = await api('GET', `/groups/${id}/join-requests${query({ limit: 100 })}`);
    requests.replaceChildren(
      ...page.items.map((request) => {
        const approve = h('button', { type: 'button', class: 'primary small' }, 'Approve');
        const reject = h('button', { type: 'button', class: 'small' }, 'Reject');
        approve.onclick = () => change(() => api('POST', `/groups/${id}/join-requests/${request.id}/approve`));
        reject.onclick = () => change(() => api('POST', `/groups/${id}/join-requests/${request.id}/reject`));
        const who = h('span', { class: 'who' }, h('span', { class: 'name', text: request.user.nickname }), h('span', { class: 'username', text: `@${request.user.username}` }));
        if (request.message) who.append(h('span', { class: 'note', text: `“${request.message}”` }));
        return h('li', { class: 'person' }, h('span', { class: 'picture' }, avatar(request.user)), who, h('span', { class: 'person-actions' }, approve, reject));
      }),
    );
    if (!page.items.length) requests.append(h('li', { class: 'empty' }, 'No pending requests.'));
  }

  async function change(action, done) {
    try {
      await action();
      if (done) status.ok(done);
      await load();
    } catch (err) {
      status.error(err);
    }
  }

  async function load() {
    group = await api('GET', `/groups/${id}`);
    render();
    if (group.my_role) {
      await loadMembers();
      render();
      await loadRequests();
    } else {
      members.replaceChildren(h('li', { class: 'empty' }, 'Only members see who is in the group.'));
    }
  }

  const off = bus.on('groups', (event) => {
    if (event.group_id === id) load().catch(() => {});
  });
  load().catch((err) => status.error(err));
  return off;
}
