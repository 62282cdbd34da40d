// Closeout operations console. Plain JavaScript, no dependencies, no build step.
//
// The page carries no data: everything comes from the JSON operations API (/v1/ops)
// with the operator's key, kept in sessionStorage for this tab only. The DOM is built
// with textContent and attributes only (never markup from strings), and the policy
// (CSP with Trusted Types) would refuse anything else.
'use strict';

(() => {
  const KEY = 'closeout.ops.key';
  const ENDED = ['completed', 'compensated', 'rejected', 'cancelled'];
  const STATES = ['needs_operator', 'waiting', 'running', 'compensating', 'completed',
    'compensated', 'rejected', 'cancelled'];
  const FILTERS = ['state', 'flow', 'channel', 'step', 'skyjoy_id', 'older_than', 'stuck', 'limit'];
  const DEFAULT_LIMIT = 100;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  const ACTIONS = {
    approve: { title: 'Approve', done: 'Approved',
      text: 'Give the operations decision "continue": the request goes on to close the account.' },
    reject: { title: 'Reject', done: 'Rejected',
      text: 'Give the operations decision "refuse": completed steps that can be undone are undone and the request ends rejected.' },
    retry: { title: 'Retry now', done: 'Retry requested',
      text: 'Run the waiting retry of the current step now instead of at its scheduled time.' },
    resume: { title: 'Resume', done: 'Resumed',
      text: 'Resume a request that needs an operator: its current step runs again.' },
    skip: { title: 'Skip the current step', done: 'Step skipped',
      text: 'Skip the current step as if it had produced the output below; the request moves on.' },
    cancel: { title: 'Cancel', done: 'Cancelled',
      text: 'Cancel the request: completed steps that can be undone are undone and it ends cancelled. Not possible once the account is closed.' },
  };
  const BULK = {
    retry: 'Retry now', resume: 'Resume', cancel: 'Cancel',
  };

  const $ = (id) => document.getElementById(id);

  // Bumped by every navigation, so an answer for a page left meanwhile is dropped.
  let generation = 0;
  // The request shown on the detail page, and the dialog's pending action.
  let current = null;
  let pending = null;
  // The certificate shown on the detail page: { id, signed, text } (text as served).
  let certificate = null;

  // --- DOM helpers -------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function say(message) {
    $('status').textContent = message || '';
  }

  function showView(name, title) {
    for (const view of ['sign-in', 'list', 'detail']) {
      $(`view-${view}`).hidden = view !== name;
    }
    $('sign-out').hidden = name === 'sign-in';
    document.title = `${title} · Closeout operations`;
  }

  // Marks the page rendered for navigation `mine` (unless another one started since), so
  // a reader (or a test) can tell a fresh answer from the previous one.
  function loaded(mine) {
    if (mine === generation) $('main').dataset.loaded = String(mine);
  }

  function focusHeading(id) {
    const heading = $(id);
    if (heading && document.activeElement !== heading) heading.focus({ preventScroll: true });
  }

  // --- formatting --------------------------------------------------------------------

  function time(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return el('time', { datetime: iso }, date.toISOString().replace('T', ' ').slice(0, 19));
  }

  function age(seconds) {
    const s = Math.max(0, Math.floor(Number(seconds) || 0));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    if (m > 0) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  function duration(ms) {
    if (!(ms >= 0)) return '';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return age(ms / 1000);
  }

  function stateBadge(state) {
    return el('span', { class: `badge state-${state}` }, state);
  }

  function stuckBadge(summary) {
    if (summary.stuck_since === undefined || summary.stuck_since === null) return null;
    const since = new Date(summary.stuck_since);
    const label = Number.isNaN(since.getTime()) ? 'stuck'
      : `stuck since ${since.toISOString().replace('T', ' ').slice(0, 16)} UTC`;
    return el('span', { class: 'badge stuck', title: label }, 'stuck');
  }

  // --- the API -----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
      this.retryAfter = retryAfter;
    }

    describe() {
      let text = `${this.code}: ${this.message}`;
      if (this.retryAfter) text += ` (retry after ${this.retryAfter} s)`;
      return text;
    }
  }

  // The parsed answer; with `raw`, { data, text } so a document can be kept byte for byte.
  async function call(key, method, path, body, raw) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'NETWORK', `the server could not be reached (${e.message})`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || `HTTP_${response.status}`,
        error.message || response.statusText || 'the request failed', error.field,
        response.headers.get('Retry-After'));
    }
    return raw ? { data, text } : data;
  }

  async function api(method, path, body, raw) {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw new ApiError(401, 'UNAUTHENTICATED', 'sign in first');
    try {
      return await call(key, method, path, body, raw);
    } catch (e) {
      // The key was removed or rotated on the server: back to the sign-in form.
      if (e instanceof ApiError && e.status === 401) signOut({ error: `Signed out: ${e.describe()}` });
      throw e;
    }
  }

  // --- sign-in -----------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    current = null;
    pending = null;
    certificate = null;
    generation += 1;
    if ($('dialog').open) $('dialog').close();
    renderSignIn(message);
  }

  // `notice` goes to the status line, `error` under the key field.
  function renderSignIn({ notice, error } = {}) {
    showView('sign-in', 'Sign in');
    $('sign-in-error').textContent = error || '';
    say(notice || '');
    $('sign-in-key').value = '';
    $('sign-in-key').focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('sign-in-key');
    const key = input.value.trim();
    const error = $('sign-in-error');
    if (!key) {
      error.textContent = 'Paste your operations key.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    error.textContent = '';
    say('Checking the key…');
    try {
      // Any operations read proves the key; the API answers 401 or 403 with why not.
      await call(key, 'GET', '/v1/ops/requests?limit=1');
    } catch (e) {
      say('');
      error.textContent = e instanceof ApiError ? e.describe() : String(e);
      input.setAttribute('aria-invalid', 'true');
      input.select();
      return;
    }
    input.removeAttribute('aria-invalid');
    input.value = '';
    sessionStorage.setItem(KEY, key);
    say('Signed in.');
    route();
  }

  // --- routing -----------------------------------------------------------------------

  function parseHash() {
    const hash = location.hash.replace(/^#\/?/, '');
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'requests' && parts[1]) return { view: 'detail', id: decodeURIComponent(parts[1]) };
    return { view: 'list', params };
  }

  function route() {
    if (!sessionStorage.getItem(KEY)) {
      renderSignIn();
      return;
    }
    const where = parseHash();
    if (where.view === 'detail') renderDetail(where.id, true);
    else renderList(where.params, true);
  }

  // --- the list ----------------------------------------------------------------------

  function filtersFromParams(params) {
    const filters = {};
    for (const name of FILTERS) {
      const value = (params.get(name) || '').trim();
      if (value) filters[name] = value;
    }
    return filters;
  }

  function fillForm(filters) {
    const form = $('filters');
    const states = (filters.state || '').split(',').map((s) => s.trim());
    for (const box of form.querySelectorAll('input[name="state"]')) {
      box.checked = states.includes(box.value);
    }
    for (const name of FILTERS.filter((n) => n !== 'state')) {
      form.elements[name].value = filters[name] || '';
    }
  }

  function formFilters() {
    const form = $('filters');
    const params = new URLSearchParams();
    const states = [...form.querySelectorAll('input[name="state"]:checked')].map((b) => b.value);
    if (states.length) params.set('state', states.join(','));
    for (const name of FILTERS.filter((n) => n !== 'state')) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function query(filters, overrides) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries({ ...filters, ...overrides })) {
      if (value !== undefined && value !== '') params.set(name, value);
    }
    return `/v1/ops/requests?${params}`;
  }

  // Requests needing an operator come first: they are asked for on their own, then the
  // other states, each list oldest in its state first as the API answers it.
  async function fetchList(filters) {
    const chosen = filters.state ? filters.state.split(',').map((s) => s.trim()).filter(Boolean) : [];
    const wanted = chosen.length ? chosen : STATES;
    const others = wanted.filter((s) => s !== 'needs_operator');
    const limit = Number(filters.limit) || DEFAULT_LIMIT;
    const [first, rest] = await Promise.all([
      wanted.includes('needs_operator')
        ? api('GET', query(filters, { state: 'needs_operator' })) : { requests: [] },
      others.length ? api('GET', query(filters, { state: others.join(',') })) : { requests: [] },
    ]);
    return first.requests.concat(rest.requests).slice(0, limit);
  }

  async function renderList(params, moveFocus) {
    const mine = ++generation;
    const filters = filtersFromParams(params);
    showView('list', 'Requests');
    fillForm(filters);
    const error = $('list-error');
    error.textContent = '';
    const rows = clear($('list-rows'));
    $('list-caption').textContent = 'Loading…';
    if (moveFocus) focusHeading('list-title');
    let requests;
    try {
      requests = await fetchList(filters);
    } catch (e) {
      if (mine !== generation) return;
      $('list-caption').textContent = 'Requests';
      error.textContent = e instanceof ApiError ? e.describe() : String(e);
      loaded(mine);
      return;
    }
    if (mine !== generation) return;
    const operator = requests.filter((r) => r.state === 'needs_operator').length;
    $('list-caption').textContent = requests.length === 0
      ? 'No request matches these filters.'
      : `${requests.length} request${requests.length === 1 ? '' : 's'}` +
        (operator ? `, ${operator} needing an operator (listed first)` : '') +
        '; oldest in its state first.';
    for (const r of requests) {
      rows.append(el('tr', { class: r.state === 'needs_operator' ? 'attention' : null, 'data-id': r.request_id },
        el('td', {}, el('a', { href: `#/requests/${r.request_id}`, class: 'id' }, r.request_id)),
        el('td', {}, r.flow),
        el('td', {}, stateBadge(r.state), ' ', stuckBadge(r)),
        el('td', {}, r.current_step || '—'),
        el('td', { 'data-seconds': r.age_in_state_secs }, age(r.age_in_state_secs)),
        el('td', {}, r.channel || '—')));
    }
    loaded(mine);
  }

  // --- the detail --------------------------------------------------------------------

  function summaryItem(list, term, ...value) {
    list.append(el('dt', {}, term), el('dd', {}, ...value));
  }

  // Durations: a step starts when the previous one ends (or the workflow starts), when
  // its wait starts, or when an operator resumes it; it ends with step_succeeded,
  // step_skipped or step_failed. A compensation runs from compensation_started to
  // compensation_succeeded or compensation_failed.
  function durations(history) {
    const found = new Map();
    let boundary = null;
    const started = new Map();
    const undoing = new Map();
    const at = (e) => new Date(e.at).getTime();
    for (const e of history) {
      switch (e.kind) {
        case 'workflow_started':
          boundary = at(e);
          break;
        case 'wait_started':
        case 'resumed':
          if (e.step) started.set(e.step, at(e));
          break;
        case 'compensation_started':
          undoing.set(e.step, at(e));
          break;
        case 'step_succeeded':
        case 'step_skipped':
        case 'step_failed': {
          const from = started.has(e.step) ? started.get(e.step) : boundary;
          if (from !== null && from !== undefined) found.set(e.seq, at(e) - from);
          started.delete(e.step);
          boundary = at(e);
          break;
        }
        case 'compensation_succeeded':
        case 'compensation_failed':
          if (undoing.has(e.step)) found.set(e.seq, at(e) - undoing.get(e.step));
          undoing.delete(e.step);
          break;
        default:
          break;
      }
    }
    return found;
  }

  function render(detail) {
    current = detail;
    $('detail-title').textContent = `Request ${detail.request_id}`;
    const summary = clear($('detail-summary'));
    summaryItem(summary, 'Request ID', el('span', { class: 'id' }, detail.request_id));
    summaryItem(summary, 'State', stateBadge(detail.state), ' ', stuckBadge(detail),
      ` for ${age(detail.age_in_state_secs)} (since `, time(detail.state_since), ')');
    summaryItem(summary, 'Current step', detail.current_step || '—');
    if (detail.reason) {
      summaryItem(summary, 'Reason', el('code', {}, detail.reason.code), ' ', detail.reason.message);
    }
    summaryItem(summary, 'Flow', `${detail.flow} (definition version ${detail.definition_version})`);
    summaryItem(summary, 'Channel', detail.channel || '—');
    summaryItem(summary, 'SkyJoy ID', detail.skyjoy_id || '—');
    summaryItem(summary, 'Phone', detail.phone_masked
      ? el('span', { id: 'phone-masked' }, detail.phone_masked) : 'not held (purged)');
    summaryItem(summary, 'Created', time(detail.created_at));
    summaryItem(summary, 'Updated', time(detail.updated_at));
    if (detail.next_run_at) summaryItem(summary, 'Next run', time(detail.next_run_at));

    // An ended request takes no action (the engine would answer 409 to each), so its
    // buttons go; which action fits a live request stays the API's call.
    const ended = ENDED.includes(detail.state);
    $('actions-ended').hidden = !ended;
    for (const button of document.querySelectorAll('[data-action]')) button.hidden = ended;

    const steps = clear($('steps-rows'));
    detail.steps.forEach((s, i) => {
      const here = s.id === detail.current_step;
      steps.append(el('tr', { class: here ? 'current' : null, 'aria-current': here ? 'step' : null },
        el('td', {}, i + 1),
        el('td', {}, s.id),
        el('td', {}, el('span', { class: `badge step-${s.state}` }, s.state)),
        el('td', { class: 'num' }, s.attempts),
        el('td', { class: 'num' }, s.compensation_attempts)));
    });

    const lengths = durations(detail.history);
    const timeline = clear($('timeline-rows'));
    for (const e of detail.history) {
      const error = e.error_code || e.message
        ? [e.error_code ? el('code', {}, e.error_code) : null, e.error_code && e.message ? ' ' : null, e.message]
        : [];
      timeline.append(el('tr', { 'data-kind': e.kind, class: e.actor ? 'operator' : null },
        el('td', {}, time(e.at)),
        el('td', {}, e.kind),
        el('td', {}, e.step || ''),
        el('td', { class: 'num' }, e.attempt ?? ''),
        el('td', { class: 'num' }, lengths.has(e.seq) ? duration(lengths.get(e.seq)) : ''),
        el('td', {}, ...error),
        el('td', { class: 'actor' }, e.actor || ''),
        el('td', {}, e.reason || '')));
    }
    renderCertificateSection(detail);
    $('detail-body').hidden = false;
  }

  // --- the deletion certificate ------------------------------------------------------

  const certificateFile = (id) => `closeout-certificate-${id}.json`;

  // Only a completed request has a certificate: otherwise the section says why and offers
  // no button. A certificate already shown stays while the same request is still shown.
  function renderCertificateSection(detail) {
    if (certificate && certificate.id !== detail.request_id) certificate = null;
    const completed = detail.state === 'completed';
    if (!completed) certificate = null;
    const hint = $('certificate-hint');
    if (completed) {
      hint.textContent = 'The closure is complete: its signed certificate (Ed25519) lists what was closed, where and when.';
    } else if (['rejected', 'cancelled', 'compensated'].includes(detail.state)) {
      hint.textContent = `No certificate: a ${detail.state} request closed nothing.`;
    } else {
      hint.textContent = `Available once the request completes; it is ${detail.state} now.`;
    }
    $('certificate-buttons').hidden = !completed;
    $('certificate-error').textContent = '';
    if (certificate) showCertificate();
    else hideCertificate();
  }

  function hideCertificate() {
    $('certificate-body').hidden = true;
    $('certificate-show').textContent = 'Show certificate';
    $('certificate-show').setAttribute('aria-expanded', 'false');
  }

  function showCertificate() {
    const { id, signed } = certificate;
    const doc = signed.certificate || {};
    const signature = signed.signature || {};
    const summary = clear($('certificate-summary'));
    summaryItem(summary, 'Key ID', el('span', { id: 'certificate-key-id', class: 'id' }, signature.key_id || '—'),
      signature.algorithm ? ` (${signature.algorithm})` : null);
    summaryItem(summary, 'Requested', time(doc.requested_at));
    summaryItem(summary, 'Completed', time(doc.completed_at));
    const systems = [...new Set((doc.steps || []).map((s) => s.system))];
    summaryItem(summary, 'Systems', systems.join(', ') || '—');
    if (doc.audit) {
      summaryItem(summary, 'Audit', `${doc.audit.history_entries} history entries, chain head `,
        el('code', {}, doc.audit.history_head));
    }
    const rows = clear($('certificate-rows'));
    for (const s of doc.steps || []) {
      rows.append(el('tr', { 'data-step': s.step },
        el('td', {}, s.step),
        el('td', {}, s.system),
        el('td', {}, s.action ? el('code', {}, s.action) : '—'),
        el('td', {}, s.outcome),
        el('td', {}, time(s.at)),
        el('td', { class: 'num' }, s.attempts),
        el('td', { class: 'actor' }, s.actor || '')));
    }
    const file = certificateFile(id);
    clear($('certificate-verify')).append('To check it: ',
      el('code', { id: 'certificate-command' }, `closeout certificate verify ${file}`),
      ' (where the server\'s ', el('code', {}, '[certificates]'), ' keys are configured; elsewhere add ',
      el('code', {}, `--public-key ${signature.key_id || 'KEY_ID'}=BASE64`),
      ' with the public key from ', el('code', {}, 'GET /v1/certificates/keys'), ').');
    $('certificate-body').hidden = false;
    $('certificate-show').textContent = 'Hide certificate';
    $('certificate-show').setAttribute('aria-expanded', 'true');
  }

  async function toggleCertificate() {
    if (!current || current.state !== 'completed') return;
    if (certificate) {
      certificate = null;
      hideCertificate();
      return;
    }
    const id = current.request_id;
    const button = $('certificate-show');
    const error = $('certificate-error');
    error.textContent = '';
    button.disabled = true;
    say('Fetching the certificate…');
    try {
      const { data, text } = await api('GET', `/v1/ops/requests/${encodeURIComponent(id)}/certificate`, undefined, true);
      if (!current || current.request_id !== id) return;
      certificate = { id, signed: data || {}, text };
      showCertificate();
      say(`Certificate of request ${id} fetched.`);
    } catch (e) {
      say('');
      if (current && current.request_id === id) {
        error.textContent = e instanceof ApiError ? e.describe() : String(e);
      }
    } finally {
      button.disabled = false;
    }
  }

  // Saves the certificate exactly as the API served it (its signature covers the content,
  // whatever the layout), through a Blob URL that lives only as long as the download needs.
  function downloadCertificate() {
    if (!certificate) return;
    const blob = new Blob([certificate.text], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: certificateFile(certificate.id), hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    say(`Downloading ${certificateFile(certificate.id)}.`);
  }

  async function renderDetail(id, moveFocus) {
    const mine = ++generation;
    showView('detail', 'Request');
    $('detail-error').textContent = '';
    if (moveFocus) {
      $('detail-body').hidden = true;
      $('detail-title').textContent = 'Request';
      focusHeading('detail-title');
    }
    if (!UUID.test(id)) {
      $('detail-body').hidden = true;
      $('detail-error').textContent = 'That is not a request ID.';
      loaded(mine);
      return;
    }
    try {
      const detail = await api('GET', `/v1/ops/requests/${encodeURIComponent(id)}`);
      if (mine !== generation) return;
      render(detail);
      document.title = `Request ${id} · Closeout operations`;
    } catch (e) {
      if (mine !== generation) return;
      $('detail-body').hidden = true;
      $('detail-error').textContent = e instanceof ApiError ? e.describe() : String(e);
    }
    loaded(mine);
  }

  // --- the confirmation dialog -------------------------------------------------------

  function openDialog(options) {
    pending = options;
    $('dialog-title').textContent = options.title;
    $('dialog-text').textContent = options.text;
    $('dialog-output-field').hidden = !options.output;
    $('dialog-output').value = options.output ? '{}' : '';
    $('dialog-reason').value = '';
    $('dialog-reason').removeAttribute('aria-invalid');
    $('dialog-output').removeAttribute('aria-invalid');
    $('dialog-reason-field').hidden = false;
    $('dialog-reason').readOnly = false;
    clear($('dialog-result'));
    $('dialog-error').textContent = '';
    $('dialog-confirm').hidden = false;
    $('dialog-confirm').disabled = false;
    $('dialog-confirm').textContent = options.confirm;
    $('dialog-close').textContent = 'Go back';
    $('dialog').showModal();
    $('dialog-reason').focus();
  }

  function invalid(field, message) {
    $('dialog-error').textContent = message;
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }

  function readReason() {
    const field = $('dialog-reason');
    const reason = field.value.trim();
    if (!reason) return invalid(field, 'A reason is required.');
    if (reason.length > 1000) return invalid(field, 'The reason is longer than 1000 characters.');
    field.removeAttribute('aria-invalid');
    return reason;
  }

  function readOutput() {
    const field = $('dialog-output');
    let output;
    try {
      output = JSON.parse(field.value);
    } catch (e) {
      return invalid(field, `The output is not valid JSON (${e.message}).`);
    }
    if (output === null) return invalid(field, 'The output is required; use {} when later steps need nothing.');
    field.removeAttribute('aria-invalid');
    return { value: output };
  }

  function showFailure(e) {
    const message = e instanceof ApiError ? e.describe() : String(e);
    $('dialog-error').textContent = e instanceof ApiError && e.code === 'NOT_ALLOWED'
      ? `${message} — this action does not apply to the request as it is now.` : message;
    if (e instanceof ApiError && e.field === 'reason') $('dialog-reason').setAttribute('aria-invalid', 'true');
    if (e instanceof ApiError && e.field === 'output') $('dialog-output').setAttribute('aria-invalid', 'true');
  }

  async function confirmDialog(event) {
    event.preventDefault();
    if (!pending) return;
    $('dialog-error').textContent = '';
    const reason = readReason();
    if (reason === undefined) return;
    let output;
    if (pending.output) {
      output = readOutput();
      if (output === undefined) return;
    }
    const button = $('dialog-confirm');
    button.disabled = true;
    try {
      await pending.run(reason, output && output.value);
    } catch (e) {
      showFailure(e);
    } finally {
      button.disabled = false;
    }
  }

  function openAction(action) {
    if (!current) return;
    const what = ACTIONS[action];
    const id = current.request_id;
    openDialog({
      title: `${what.title}: request ${id}`,
      text: what.text + (action === 'skip' && current.current_step ? ` Step: ${current.current_step}.` : ''),
      confirm: what.title,
      output: action === 'skip',
      run: async (reason, output) => {
        const body = action === 'skip' ? { reason, output } : { reason };
        say('Working…');
        let detail;
        try {
          detail = await api('POST', `/v1/ops/requests/${encodeURIComponent(id)}/${action}`, body);
        } catch (e) {
          say('');
          throw e;
        }
        $('dialog').close();
        render(detail);
        say(`${what.done}. The request is now ${detail.state}` +
          (detail.current_step ? ` at ${detail.current_step}.` : '.'));
      },
    });
  }

  function openBulk(action) {
    const filters = filtersFromParams(parseHash().params || new URLSearchParams());
    const filter = { ...filters };
    if (filter.limit) filter.limit = Number(filter.limit);
    if (filter.stuck) filter.stuck = filter.stuck === 'true';
    const described = Object.entries(filters).map(([k, v]) => `${k}=${v}`).join(', ') || 'none';
    let checked = null;
    openDialog({
      title: `Bulk ${BULK[action].toLowerCase()}`,
      text: `${BULK[action]} every request matching the current filters (${described}). A dry run counts them first.`,
      confirm: 'Count matches (dry run)',
      output: false,
      run: async (reason) => {
        if (checked === null) {
          const dry = await api('POST', `/v1/ops/bulk/${action}`, { filter, reason, dry_run: true });
          checked = dry;
          const result = clear($('dialog-result'));
          result.append(el('p', { id: 'bulk-count' },
            `Dry run: ${dry.count} request${dry.count === 1 ? '' : 's'} match${dry.count === 1 ? 'es' : ''}. Nothing has changed yet.`));
          if (dry.request_ids.length) {
            result.append(el('ul', { class: 'ids' },
              dry.request_ids.slice(0, 20).map((id) => el('li', { class: 'id' }, id)),
              dry.request_ids.length > 20 ? el('li', {}, `and ${dry.request_ids.length - 20} more`) : null));
          }
          $('dialog-reason').readOnly = true;
          if (dry.count === 0) {
            $('dialog-confirm').hidden = true;
            $('dialog-close').textContent = 'Close';
          } else {
            $('dialog-confirm').textContent = `${BULK[action]} ${dry.count} request${dry.count === 1 ? '' : 's'}`;
          }
          return;
        }
        say('Working…');
        const done = await api('POST', `/v1/ops/bulk/${action}`, { filter, reason, dry_run: false });
        const result = clear($('dialog-result'));
        result.append(el('p', { id: 'bulk-outcome' },
          `Done: ${done.request_ids.length} succeeded, ${done.failed.length} failed (of ${done.count} matched).`));
        if (done.failed.length) {
          result.append(el('ul', { class: 'ids' }, done.failed.map((f) =>
            el('li', {}, el('span', { class: 'id' }, f.request_id), ` ${f.code}: ${f.message}`))));
        }
        $('dialog-confirm').hidden = true;
        $('dialog-close').textContent = 'Close';
        say(`Bulk ${action}: ${done.request_ids.length} succeeded, ${done.failed.length} failed.`);
        pending = { ...pending, refresh: true };
      },
    });
  }

  function closeDialog() {
    const refresh = pending && pending.refresh;
    pending = null;
    $('dialog').close();
    if (refresh) route();
  }

  // --- wiring ------------------------------------------------------------------------

  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut({ notice: 'Signed out.' }));
    $('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      const target = `#/requests?${formFilters()}`;
      if (location.hash === target) route();
      else location.hash = target;
    });
    $('filters-clear').addEventListener('click', () => {
      if (location.hash === '#/requests') route();
      else location.hash = '#/requests';
    });
    for (const button of document.querySelectorAll('[data-bulk]')) {
      button.addEventListener('click', () => openBulk(button.dataset.bulk));
    }
    for (const button of document.querySelectorAll('[data-action]')) {
      button.addEventListener('click', () => openAction(button.dataset.action));
    }
    $('detail-refresh').addEventListener('click', () => {
      if (current) {
        say('');
        renderDetail(current.request_id, false);
      }
    });
    $('certificate-show').addEventListener('click', toggleCertificate);
    $('certificate-download').addEventListener('click', downloadCertificate);
    $('dialog-form').addEventListener('submit', confirmDialog);
    $('dialog-close').addEventListener('click', closeDialog);
    $('dialog').addEventListener('cancel', () => {
      const refresh = pending && pending.refresh;
      pending = null;
      if (refresh) setTimeout(route);
    });
    window.addEventListener('hashchange', route);
    route();
  }

  start();
})();
