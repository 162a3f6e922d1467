// Drives the dashboard's token prompt in Debian's headless Chromium. Run by
// internal/dashboard's TestDashboardTokenPrompt, whose server sees this
// browser as a user other than root, so the private API answers 401 until
// the token is given.
//
//   DASH_URL    the dashboard
//   DASH_OUT    directory for the screenshot (dashboard-token.png)
//   DASH_TOKEN  the server's token
//   CHROMIUM    the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed; prints one line per check.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.DASH_URL;
const out = process.env.DASH_OUT;
const token = process.env.DASH_TOKEN;
if (!url || !out || !token) {
  console.error('DASH_URL, DASH_OUT and DASH_TOKEN are required');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const problems = [];
const pageErrors = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) problems.push(what);
}

async function waitFor(page, what, fn, arg, timeout = 20000) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout, polling: 200 });
    check(true, what);
    return await h.jsonValue();
  } catch (e) {
    check(false, `${what}: ${e.message.split('\n')[0]}`);
    return null;
  }
}

const promptShown = () => {
  const f = document.querySelector('#token-form');
  return f && !f.hidden && document.activeElement === f.querySelector('input');
};

const profile = mkdtempSync(join(tmpdir(), 'picket-token-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  colorScheme: 'light',
  timeout: 60000,
});
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Every request to the API, and whether it carried the token.
  const sent = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/')) sent.push({ url: r.url(), auth: r.headers().authorization || '' });
  });

  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp && resp.ok(), `the page itself is public (${resp && resp.status()})`);
  await waitFor(page, 'the token is asked for, the field focused', promptShown);
  await waitFor(page, "the server's reason is shown", () => /only root can read/.test(document.querySelector('#conn').textContent));
  const rows = await page.evaluate(() => document.querySelectorAll('#groups tbody tr, #holders tbody tr').length);
  check(rows === 0, `no process shown without the token (${rows} rows)`);
  const forms = await page.evaluate(() => document.querySelectorAll('#token-form').length);
  check(forms === 1, `one form however many requests were refused (${forms})`);
  await page.screenshot({ path: join(out, 'dashboard-token.png'), fullPage: false });
  console.log(`     screenshot ${join(out, 'dashboard-token.png')}`);

  // A wrong token: asked again, told it was wrong, not kept.
  await page.fill('#token-input', 'not-the-token-0123456789');
  await Promise.all([page.waitForEvent('load'), page.press('#token-input', 'Enter')]);
  await waitFor(page, 'a wrong token is asked again, and said to be wrong', () => {
    const f = document.querySelector('#token-form');
    return f && !f.hidden && /wrong/.test(f.querySelector('.token-problem').textContent);
  });
  check((await page.evaluate(() => sessionStorage.getItem('picket.token'))) === null, 'the wrong token is forgotten');

  // The right one: the host is shown, every API request carries it.
  sent.length = 0;
  await page.fill('#token-input', token);
  await Promise.all([page.waitForEvent('load'), page.click('#token-form button')]);
  await waitFor(page, 'with the token, the snapshot is rendered', () => document.body.dataset.updated && document.querySelectorAll('#groups tbody tr').length > 0);
  await waitFor(page, 'the imapd storm on the process-group plot (private history is not needed)', () =>
    [...document.querySelectorAll('[data-plot="groups"] .legend li')].some((li) => li.dataset.series === 'group/alice/imapd/count'),
  );
  check(await page.evaluate(() => !document.querySelector('#token-form') || document.querySelector('#token-form').hidden), 'the form is gone');
  check(await page.evaluate(() => document.querySelector('#conn').hidden), 'no error line');
  const api = sent.filter((s) => /\/api\/v1\/(snapshot|findings|alarms|journal)/.test(s.url));
  check(api.length >= 4 && api.every((s) => s.auth === 'Bearer ' + token), `the private requests carry the bearer header (${api.length})`);
  check(sent.every((s) => !s.url.includes(token)), 'no URL holds the token');
  check(!page.url().includes(token), `the page's URL does not hold it (${page.url()})`);
  const kept = await page.evaluate(() => ({ session: sessionStorage.getItem('picket.token'), local: localStorage.length }));
  check(kept.session === token && kept.local === 0, `kept in sessionStorage only (session ${kept.session === token}, localStorage items ${kept.local})`);

  // A reload of the tab keeps it; a new tab asks again.
  await page.reload({ waitUntil: 'load' });
  await waitFor(page, 'a reload keeps the token', () => document.body.dataset.updated && !document.querySelector('#token-form'));
  const tab = await ctx.newPage();
  await tab.goto(url, { waitUntil: 'load' });
  await waitFor(tab, 'a new tab asks again', promptShown);
  await tab.close();
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

check(pageErrors.length === 0, `no script errors${pageErrors.length ? ': ' + pageErrors.join('; ') : ''}`);
console.log(problems.length === 0 ? 'token: all checks passed' : `token: ${problems.length} checks failed`);
process.exit(problems.length === 0 ? 0 : 1);
