// The Status page: this node, its raft state, the cluster's members,
// listeners, broker counters and scheduled backups. Refreshed every 5 s
// while shown.

import { call, APIError } from './api.js';
import { $, el, setText, showError, time } from './ui.js';

const REFRESH_MS = 5000;
let timer = null;

export function init() {
  $('status-refresh').addEventListener('click', () => refresh());
}

export function show() {
  refresh();
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

export function hide() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    const [st, metrics, members] = await Promise.all([
      call('GET', '/api/v1/status'),
      call('GET', '/api/v1/metrics'),
      call('GET', '/api/v1/cluster').catch((e) => {
        if (e instanceof APIError && e.status === 404) return null; // a node without cluster routes
        throw e;
      }),
    ]);
    showError('status-error', null);
    render(st, metrics, members);
    const page = $('page-status');
    page.dataset.loaded = 'true';
    setText('status-updated', 'updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    if (e.status !== 401) showError('status-error', e);
  }
}

function render(st, m, members) {
  setText('st-node', st.node);
  setText('st-node-id', st.node_id);
  setText('st-cluster-id', st.cluster_id);
  setText('st-version', st.version);
  setText('st-uptime', st.uptime ? `${st.uptime} (since ${time(st.started_at)})` : '');

  const r = st.raft || {};
  const state = $('st-raft-state');
  state.textContent = r.state || '—';
  state.dataset.state = (r.state || '').toLowerCase();
  $('st-raft-leader').replaceChildren(r.leader || 'none',
    r.leader_id && r.leader_id === st.node_id ? el('span', { class: 'tag' }, 'this node') : '');
  setText('st-raft-term', r.term);
  setText('st-raft-commit', r.commit_index);
  setText('st-raft-applied', r.applied_index);
  setText('st-raft-last', r.last_log_index);
  setText('st-raft-voters', r.voters);

  setText('st-m-connections', m.connections);
  setText('st-m-subscriptions', m.subscriptions);
  setText('st-m-received', m.messages_received);
  setText('st-m-sent', m.messages_sent);
  setText('st-m-retained', m.retained_count);

  renderSchedule($('st-schedule'), st.backups);

  const rows = (members && members.nodes) || [];
  $('st-members').replaceChildren(...(rows.length ? rows.map((n) => el('tr', {},
    el('td', {}, n.name || '—', n.node_id === st.node_id ? el('span', { class: 'tag' }, 'this node') : null),
    el('td', { class: 'mono' }, n.node_id),
    el('td', {}, n.address),
    el('td', {}, el('span', { class: 'badge', dataset: { state: n.role } }, n.role)),
    el('td', {}, n.healthy ? 'yes' : el('span', { class: 'bad', title: n.error || '' }, 'no' + (n.error ? `: ${n.error}` : ''))),
    el('td', {}, n.last_contact || '—'),
    el('td', { class: 'num' }, n.applied_index),
    el('td', {}, n.version || '—'),
  )) : [el('tr', {}, el('td', { colspan: 8, class: 'empty' }, members ? 'No members reported.' : 'This node serves no cluster routes.'))]));

  $('st-listeners').replaceChildren(...(st.listeners || []).map((l) => el('tr', {},
    el('td', {}, l.name), el('td', {}, l.type), el('td', { class: 'mono' }, l.bind),
    el('td', {}, l.running ? 'yes' : el('span', { class: 'bad' }, 'no')),
  )));
}

// renderSchedule fills a <dl> with the scheduled backups' state.
function renderSchedule(dl, s) {
  const rows = [];
  if (!s) rows.push(['Scheduled backups', 'not reported by this node']);
  else if (!s.enabled) rows.push(['Enabled', 'no (backup.interval = 0)']);
  else {
    rows.push(['Enabled', `every ${s.interval}, keeping the newest ${s.keep || 'all'}`]);
    rows.push(['Next', time(s.next_at)]);
    rows.push(['Last success', s.last_success ? `${time(s.last_success)}: ${s.last_file || ''}` : 'none yet']);
    if (s.last_error) rows.push(['Last failure', `${time(s.last_error_at)}: ${s.last_error}`]);
  }
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: k === 'Last failure' ? 'bad' : '' }, v)]));
}
