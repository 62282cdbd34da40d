// The operations console (/ops) in headless Chromium against a real `closeout serve`.
//
// Run by tests/console.rs, which starts serve, seeds the requests through the channel
// and operations APIs, and passes what it made in the environment:
//
//   CONSOLE_URL    http://127.0.0.1:<port> of the serve
//   OPS_KEY        an operations credential with the write role; OPS_ACTOR its actor
//   CHANNEL_KEY    a channel key (the console must show the API's 403 for it)
//   APPROVE_ID     a vietjet request waiting at ops_decision
//   SKIP_ID        a request needing an operator at SKIP_STEP (a failed step after the pivot)
//   BULK_ID        another request waiting at ops_decision (bulk-cancelled here)
//   APPROVE_MEMBER the SkyJoy ID of APPROVE_ID's member
//   PHONES         comma-separated phones the requests were submitted with
//   ARTIFACTS      directory for the screenshots
//   DOWNLOADS      directory where the downloaded deletion certificate is saved (as
//                  closeout-certificate-<APPROVE_ID>.json), for tests/console.rs to verify
//   CHROMIUM       the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passes; otherwise prints the failure and saves failure.png.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (!value) throw new Error(`${name} is not set; tests/console.rs sets it (cargo test --test console)`);
  return value;
}

const BASE = env('CONSOLE_URL');
const OPS_KEY = env('OPS_KEY');
const OPS_ACTOR = env('OPS_ACTOR');
const CHANNEL_KEY = env('CHANNEL_KEY');
const APPROVE_ID = env('APPROVE_ID');
const APPROVE_MEMBER = env('APPROVE_MEMBER');
const SKIP_ID = env('SKIP_ID');
const SKIP_STEP = env('SKIP_STEP');
const BULK_ID = env('BULK_ID');
const PHONES = env('PHONES').split(',');
const ARTIFACTS = env('ARTIFACTS');
const DOWNLOADS = env('DOWNLOADS');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TIMEOUT = 15000;

mkdirSync(ARTIFACTS, { recursive: true });
mkdirSync(DOWNLOADS, { recursive: true });
rmSync(path.join(ARTIFACTS, 'failure.png'), { force: true });

// Every spelling of the submitted phones that must never reach the browser.
const forbidden = PHONES.flatMap((p) => {
  const digits = p.replace(/^\+/, '');
  const national = digits.startsWith('84') ? digits.slice(2) : digits;
  return [p, digits, `0${national}`, national];
});

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

// Console errors fail the test (a CSP violation shows up here), except the browser's own
// note about the API's expected refusals, which the page itself displays, and the 503 this
// test stands in for a server without a certificate key.
const problems = [];
const expectedRefusal = /Failed to load resource: the server responded with a status of (400|401|403|409)/;
const mockedUnavailable = /Failed to load resource: the server responded with a status of 503/;
page.on('console', (message) => {
  if (message.type() !== 'error' || expectedRefusal.test(message.text())) return;
  if (mockedUnavailable.test(message.text()) && message.location().url.endsWith('/certificate')) return;
  problems.push(`console error: ${message.text()}`);
});
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
// What the API sends the browser must not hold a phone either.
const apiBodies = [];
page.on('response', async (response) => {
  if (new URL(response.url()).pathname.startsWith('/v1/ops/')) {
    try {
      apiBodies.push({ url: response.url(), body: await response.text() });
    } catch (_) { /* a body that was not kept (redirect, abort) */ }
  }
});

let passed = 0;
async function check(name, body) {
  await body();
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

async function noPhoneInPage(where) {
  const html = await page.content();
  for (const phone of forbidden) {
    assert.ok(!html.includes(phone), `${where}: the page HTML contains the phone ${phone}`);
  }
}

// Runs `action` and waits until the page has rendered a fresh answer (the console marks
// every finished list or detail load on <main data-loaded>).
async function rendered(action) {
  const before = Number((await page.locator('main').getAttribute('data-loaded')) ?? 0);
  await action();
  await page.waitForFunction(
    (b) => Number(document.getElementById('main').dataset.loaded ?? 0) > b, before);
}

const rowIds = () => page.locator('#list-rows tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
const rowState = (id) => page.locator(`#list-rows tr[data-id="${id}"] .badge`).first().textContent();
const detailState = () => page.locator('#detail-summary .badge').first().textContent();

async function applyFilters(fill) {
  await rendered(() => page.locator('#filters-clear').click());
  await fill();
  await rendered(() => page.getByRole('button', { name: 'Apply filters' }).click());
}

// A fresh page load: the key survives in sessionStorage, the hash picks the view.
async function goto(hash) {
  await page.goto(`${BASE}/ops${hash}`);
  await page.waitForFunction(() => document.getElementById('main').dataset.loaded !== undefined);
}

async function openDetail(id) {
  await goto(`#/requests/${id}`);
  await assertTitle(id);
}

async function assertTitle(id) {
  await page.locator('#detail-title', { hasText: id }).waitFor();
}

// Refreshes the detail page until its state is `state`.
async function untilState(state) {
  const deadline = Date.now() + 30000;
  for (;;) {
    if ((await detailState()) === state) return;
    assert.ok(Date.now() < deadline, `the request did not reach ${state}; it is ${await detailState()}`);
    await page.waitForTimeout(250);
    await rendered(() => page.locator('#detail-refresh').click());
  }
}

async function timelineRow(kind, text) {
  const row = page.locator(`#timeline-rows tr[data-kind="${kind}"]`, { hasText: text });
  await row.first().waitFor();
  return row.first();
}

const dialog = page.locator('#dialog');

try {
  await check('the console is served without a key, with a strict policy and cache headers', async () => {
    const response = await page.goto(`${BASE}/ops`);
    assert.equal(response.status(), 200);
    const headers = response.headers();
    const csp = headers['content-security-policy'] ?? '';
    assert.match(csp, /^default-src 'self'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(headers['x-frame-options'], 'DENY');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['cache-control'], 'no-cache');
    assert.ok(headers.etag, 'an ETag to revalidate against');
    const script = await fetch(`${BASE}/ops/console.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type'), /^text\/javascript/);
    assert.equal(script.headers.get('x-frame-options'), 'DENY');
    const again = await fetch(`${BASE}/ops/console.js`, { headers: { 'If-None-Match': script.headers.get('etag') } });
    assert.equal(again.status, 304);
    await page.locator('#view-sign-in').waitFor();
  });

  await check('a wrong key shows the API\'s 401, a channel key its 403', async () => {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error', { hasText: 'Paste your operations key' }).waitFor();
    await page.getByLabel('Operations key').fill('not-a-key-anyone-has');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error', { hasText: 'UNAUTHENTICATED: unknown API key' }).waitFor();
    await page.getByLabel('Operations key').fill(CHANNEL_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error', { hasText: 'FORBIDDEN: a channel key cannot use the operations API' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  });

  await check('the operations key signs in and is kept in sessionStorage only', async () => {
    await page.getByLabel('Operations key').fill(OPS_KEY);
    await rendered(() => page.getByRole('button', { name: 'Sign in' }).click());
    await page.locator('#view-list').waitFor();
    const stored = await page.evaluate(() => [sessionStorage.getItem('closeout.ops.key'), localStorage.length, document.cookie]);
    assert.deepEqual(stored, [OPS_KEY, 0, '']);
  });

  await check('the list shows the request needing an operator first, then the waiting ones', async () => {
    const ids = await rowIds();
    for (const id of [SKIP_ID, APPROVE_ID, BULK_ID]) assert.ok(ids.includes(id), `${id} listed: ${ids}`);
    assert.equal(ids[0], SKIP_ID, 'needs_operator first although it entered its state last');
    assert.equal(await rowState(SKIP_ID), 'needs_operator');
    assert.equal(await rowState(APPROVE_ID), 'waiting');
    assert.equal(await rowState(BULK_ID), 'waiting');
    const cells = await page.locator(`#list-rows tr[data-id="${APPROVE_ID}"] td`).allTextContents();
    assert.deepEqual([cells[1], cells[3], cells[5]], ['vietjet', 'ops_decision', 'vietjet']);
    assert.match(cells[4], /^\d+(s|m \d+s)$/, `age in state: ${cells[4]}`);
    await page.locator('#list-caption', { hasText: '1 needing an operator' }).waitFor();
    await noPhoneInPage('list');
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-list.png'), fullPage: true });
  });

  await check('filters: state, member, flow, and the API\'s 400 for a bad duration', async () => {
    await applyFilters(() => page.getByLabel('waiting', { exact: true }).check());
    assert.match(page.url(), /#\/requests\?state=waiting$/);
    assert.deepEqual((await rowIds()).sort(), [APPROVE_ID, BULK_ID].sort());
    await applyFilters(() => page.getByLabel('SkyJoy ID', { exact: true }).fill(APPROVE_MEMBER));
    assert.deepEqual(await rowIds(), [APPROVE_ID]);
    await applyFilters(() => page.getByLabel('Flow', { exact: true }).selectOption('skyjoy'));
    assert.deepEqual(await rowIds(), []);
    await page.locator('#list-caption', { hasText: 'No request matches' }).waitFor();
    // Nothing has been flagged by the stuck sweep yet (its thresholds are hours).
    await applyFilters(() => page.getByLabel('Flagged by the stuck sweep', { exact: true }).selectOption('true'));
    assert.match(page.url(), /stuck=true/);
    assert.deepEqual(await rowIds(), []);
    await applyFilters(() => page.getByLabel('In state for at least', { exact: true }).fill('soon'));
    await page.locator('#list-error', { hasText: 'INVALID_FIELD' }).waitFor();
    await applyFilters(async () => {});
    assert.equal((await rowIds()).length, 3);
  });

  await check('the detail shows the masked phone, the steps and a timeline with durations', async () => {
    await rendered(() => page.locator('#list-rows a', { hasText: APPROVE_ID }).click());
    await assertTitle(APPROVE_ID);
    assert.equal(await page.locator('#phone-masked').textContent(), `+84*******${PHONES[0].slice(-3)}`);
    assert.equal(await detailState(), 'waiting');
    const steps = await page.locator('#steps-rows tr td:nth-child(2)').allTextContents();
    assert.deepEqual(steps.slice(0, 4), ['eligibility', 'remove_tokens', 'submit_to_skyjoy', 'ops_decision']);
    await timelineRow('workflow_started', '');
    const eligibility = await timelineRow('step_succeeded', 'eligibility');
    assert.match(await eligibility.locator('td').nth(4).textContent(), /^\d+(\.\d)? (ms|s)$/);
    await timelineRow('wait_started', 'ops_decision');
    await noPhoneInPage('detail');
  });

  await check('a waiting request offers no certificate, and says why', async () => {
    await page.locator('#certificate-hint', { hasText: 'Available once the request completes; it is waiting now.' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /certificate/i }).count(), 0, 'no certificate button');
    assert.ok(await page.locator('#certificate-body').isHidden());
  });

  await check('approve asks for a reason, then the request moves on', async () => {
    await page.getByRole('button', { name: 'Approve…' }).click();
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await page.locator('#dialog-error', { hasText: 'A reason is required.' }).waitFor();
    assert.ok(await dialog.isVisible(), 'nothing is sent without a reason');
    await dialog.getByLabel('Reason (required)').fill('member confirmed on the phone');
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await page.locator('#status', { hasText: 'Approved.' }).waitFor();
    assert.notEqual(await detailState(), 'waiting');
    await untilState('completed');
    // An ended request offers no actions, only the reason why.
    await page.locator('#actions-ended').waitFor({ state: 'visible' });
    assert.equal(await page.getByRole('button', { name: 'Approve…' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Cancel request…' }).count(), 0);
    const signal = await timelineRow('signal_received', 'member confirmed on the phone');
    assert.equal(await signal.locator('td').nth(6).textContent(), OPS_ACTOR);
    await noPhoneInPage('approved detail');
  });

  await check('the completed request\'s deletion certificate: steps closed, key ID, JSON download', async () => {
    const keys = await (await fetch(`${BASE}/v1/certificates/keys`)).json();
    assert.ok(keys.signing_key_id, `the sandbox serve signs certificates: ${JSON.stringify(keys)}`);
    await page.locator('#certificate-hint', { hasText: 'The closure is complete' }).waitFor();
    const show = page.getByRole('button', { name: 'Show certificate' });
    assert.equal(await show.getAttribute('aria-expanded'), 'false');
    await show.click();
    const steps = page.getByRole('table', { name: 'Steps closed, in flow order' });
    const closeSkyid = steps.locator('tr[data-step="close_skyid"]');
    await closeSkyid.waitFor();
    const cells = await closeSkyid.locator('td').allTextContents();
    assert.equal(cells[0], 'close_skyid');
    assert.equal(cells[1], 'skyjoy');
    assert.equal(cells[3], 'done');
    assert.match(cells[4], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, `closed at: ${cells[4]}`);
    const decision = await steps.locator('tr[data-step="ops_decision"] td').allTextContents();
    assert.deepEqual([decision[1], decision[3], decision[6]], ['operations', 'decided', OPS_ACTOR]);
    assert.equal(await page.locator('#certificate-key-id').textContent(), keys.signing_key_id);
    assert.equal(await page.getByRole('button', { name: 'Hide certificate' }).getAttribute('aria-expanded'), 'true');
    const file = `closeout-certificate-${APPROVE_ID}.json`;
    assert.equal(await page.locator('#certificate-command').textContent(), `closeout certificate verify ${file}`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download JSON' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), file);
    assert.equal(await download.failure(), null, 'the download completed');
    const saved = path.join(DOWNLOADS, file);
    await download.saveAs(saved);
    const downloaded = JSON.parse(readFileSync(saved, 'utf8'));
    assert.equal(downloaded.certificate.request_id, APPROVE_ID);
    assert.equal(downloaded.signature.key_id, keys.signing_key_id);
    assert.equal(downloaded.signature.algorithm, 'Ed25519');
    await noPhoneInPage('certificate');
    await page.locator('#certificate').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-certificate.png'), fullPage: true });
  });

  await check('a certificate the API cannot give shows its error (503 stood in)', async () => {
    await rendered(() => page.locator('#detail-refresh').click());
    await page.getByRole('button', { name: 'Hide certificate' }).waitFor();
    await page.getByRole('button', { name: 'Hide certificate' }).click();
    assert.ok(await page.locator('#certificate-body').isHidden());
    await page.route('**/certificate', (route) => route.fulfill({
      status: 503,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'CERTIFICATES_NOT_CONFIGURED', message: 'no signing key is configured' } }),
    }));
    try {
      await page.getByRole('button', { name: 'Show certificate' }).click();
      await page.locator('#certificate-error', { hasText: 'CERTIFICATES_NOT_CONFIGURED: no signing key is configured' }).waitFor();
      assert.ok(await page.locator('#certificate-body').isHidden());
    } finally {
      await page.unroute('**/certificate');
    }
  });

  await check('an action that does not apply shows the API\'s 409 NOT_ALLOWED', async () => {
    await openDetail(SKIP_ID);
    assert.equal(await detailState(), 'needs_operator');
    await page.getByRole('button', { name: 'Approve…' }).click();
    await dialog.getByLabel('Reason (required)').fill('trying the wrong action');
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await page.locator('#dialog-error', { hasText: 'NOT_ALLOWED' }).waitFor();
    await dialog.getByRole('button', { name: 'Go back', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await detailState(), 'needs_operator');
  });

  await check('skip takes the output JSON and a reason; the timeline shows them with the actor', async () => {
    const failed = await timelineRow('step_failed', SKIP_STEP);
    assert.match(await failed.textContent(), /CLIENT_ERROR/);
    await page.getByRole('button', { name: 'Skip step…' }).click();
    await dialog.waitFor();
    assert.ok(await dialog.locator('#dialog-output').isVisible());
    await dialog.locator('#dialog-output').fill('{not json');
    await dialog.getByLabel('Reason (required)').fill('Vietjet confirmed the deletion by email');
    await dialog.getByRole('button', { name: 'Skip the current step' }).click();
    await page.locator('#dialog-error', { hasText: 'not valid JSON' }).waitFor();
    await dialog.locator('#dialog-output').fill('{}');
    await dialog.getByRole('button', { name: 'Skip the current step' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await page.locator('#status', { hasText: 'Step skipped.' }).waitFor();
    const skipped = await timelineRow('step_skipped', 'Vietjet confirmed the deletion by email');
    const cells = await skipped.locator('td').allTextContents();
    assert.equal(cells[2], SKIP_STEP);
    assert.equal(cells[6], OPS_ACTOR);
    assert.equal(cells[7], 'Vietjet confirmed the deletion by email');
    await untilState('completed');
    assert.equal(await page.locator('#steps-rows tr', { hasText: SKIP_STEP }).locator('.badge').textContent(), 'skipped');
    await noPhoneInPage('skipped detail');
    const shot = path.join(ARTIFACTS, 'console-detail.png');
    await page.screenshot({ path: shot, fullPage: true });
  });

  await check('bulk refuses an empty filter with the API\'s 400', async () => {
    await goto('#/requests');
    await page.getByRole('button', { name: 'Bulk retry…' }).click();
    await dialog.getByLabel('Reason (required)').fill('nothing in particular');
    await dialog.getByRole('button', { name: 'Count matches (dry run)' }).click();
    await page.locator('#dialog-error', { hasText: 'INVALID_FIELD' }).waitFor();
    await dialog.getByRole('button', { name: 'Go back', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
  });

  await check('bulk cancel: the dry run counts, then the run reports what succeeded', async () => {
    await applyFilters(() => page.getByLabel('waiting', { exact: true }).check());
    assert.deepEqual(await rowIds(), [BULK_ID]);
    await page.getByRole('button', { name: 'Bulk cancel…' }).click();
    await dialog.getByRole('button', { name: 'Count matches (dry run)' }).click();
    await page.locator('#dialog-error', { hasText: 'A reason is required.' }).waitFor();
    await dialog.getByLabel('Reason (required)').fill('duplicate submissions from a test');
    await dialog.getByRole('button', { name: 'Count matches (dry run)' }).click();
    await page.locator('#bulk-count', { hasText: 'Dry run: 1 request matches' }).waitFor();
    await dialog.locator('.ids', { hasText: BULK_ID }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-bulk.png') });
    await dialog.getByRole('button', { name: 'Cancel 1 request' }).click();
    await page.locator('#bulk-outcome', { hasText: 'Done: 1 succeeded, 0 failed (of 1 matched).' }).waitFor();
    await rendered(() => dialog.getByRole('button', { name: 'Close', exact: true }).click());
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(await rowIds(), [], 'nothing waits any more');
    await openDetail(BULK_ID);
    await timelineRow('cancel_requested', 'duplicate submissions from a test');
  });

  await check('sign-out forgets the key', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#view-sign-in').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('closeout.ops.key')), null);
    await page.goto(`${BASE}/ops#/requests/${APPROVE_ID}`);
    await page.locator('#view-sign-in').waitFor();
    assert.ok(await page.locator('#view-detail').isHidden());
  });

  await check('no console errors, no CSP violations, no phone in any API answer', async () => {
    assert.deepEqual(problems, []);
    assert.ok(apiBodies.length > 10, `the API answers were seen (${apiBodies.length})`);
    for (const { url, body } of apiBodies) {
      for (const phone of forbidden) assert.ok(!body.includes(phone), `${url} holds the phone ${phone}`);
    }
  });

  for (const name of ['console-list.png', 'console-detail.png', 'console-certificate.png', 'console-bulk.png']) {
    console.log(`screenshot: ${path.join(ARTIFACTS, name)}`);
  }
  console.log(`console e2e: ${passed} checks passed`);
} catch (error) {
  const shot = path.join(ARTIFACTS, 'failure.png');
  await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  console.error(`not ok ${passed + 1} - ${error.stack || error}`);
  console.error(`screenshot of the failure: ${shot}`);
  if (problems.length) console.error(`browser problems: ${problems.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
