// Drives picket's dashboard in Debian's headless Chromium. Run by
// internal/dashboard's Go test, which starts the server, the storm and the
// hostile processes, and passes what to look for in the environment:
//
//   DASH_MODE       live (this host, with a storm the test started),
//                   fixture (the imapd-storm snapshot with made-up history)
//                   window (the plots' x axes, see DASH_WINDOWS) or
//                   forecast (projections to the limit, see DASH_FORECASTS)
//   DASH_WINDOWS    window: JSON [{url, samples}], servers whose history
//                   holds that many samples ending now
//   DASH_FORECASTS  forecast: JSON [{plot, series, limit, label, at, eta,
//                   max}], the projections to find (max in the plot's units)
//   DASH_FLAT       forecast: JSON list of plots that must draw none
//   DASH_URL        the dashboard
//   DASH_OUT        directory for screenshots (dashboard-MODE.png and
//                   dashboard-MODE-phone.png)
//   DASH_STORM      live: the storm's command name (e.g. pkt-dashstorm)
//   DASH_STORM_N    live: how many processes the storm has
//   DASH_HOSTILE    live: JSON list of hostile command names to find as text
//   DASH_ESCAPED    fixture: a command name as it must show, escaped
//   DASH_RULE       a hostile rule name the fake journal holds
//   DASH_THROTTLE   the id of the journal's active throttle
//   CHROMIUM        the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed; prints one line per check.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => process.env[k] ?? d;
const mode = env('DASH_MODE', 'live');
const url = env('DASH_URL');
const out = env('DASH_OUT');
const storm = env('DASH_STORM');
const stormN = Number(env('DASH_STORM_N', '40'));
const hostile = JSON.parse(env('DASH_HOSTILE', '[]'));
const rule = env('DASH_RULE', '');
const throttle = env('DASH_THROTTLE', '');
if (!url || !out || (mode === 'live' && !storm)) {
  console.error('DASH_URL, DASH_OUT and (live) DASH_STORM are required');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const problems = [];
const consoleErrors = [];
const dialogs = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) problems.push(what);
}

// waitFor polls fn in the page until it returns a truthy value.
async function waitFor(page, what, fn, arg, timeout = 30000) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout, polling: 250 });
    const v = await h.jsonValue();
    check(true, what);
    return v;
  } catch (e) {
    check(false, `${what}: ${e.message.split('\n')[0]}`);
    return null;
  }
}

async function liveChecks(page) {
  // The storm, in the groups table...
  const rowCount = await waitFor(
    page,
    `storm ${storm} in the groups table with at least ${stormN - 5} processes`,
    ([comm, n]) => {
      for (const tr of document.querySelectorAll('#groups tbody tr')) {
        if (tr.querySelector('td.comm')?.textContent === comm) {
          const c = Number(tr.children[2].textContent.replace(/,/g, ''));
          if (c >= n) return c;
        }
      }
      return false;
    },
    [storm, stormN - 5],
  );
  console.log(`     groups table: ${storm} × ${rowCount}`);
  // ...and in its plot, drawn by uPlot. The groups filter narrows the plot
  // too: other tests running beside this one may have bigger storms.
  await page.fill('#group-filter', storm);
  const last = await waitFor(
    page,
    `storm ${storm} on the process-group plot`,
    ([comm, n]) => {
      const plot = document.querySelector('[data-plot="groups"]');
      if (!plot || !plot.querySelector('canvas')) return false;
      for (const li of plot.querySelectorAll('.legend li')) {
        if (li.dataset.series.endsWith(`/${comm}/count`) && Number(li.dataset.last) >= n) return Number(li.dataset.last);
      }
      return false;
    },
    [storm, Math.floor(stormN / 2)],
  );
  console.log(`     plot legend: ${storm} last ${last}`);
  await waitFor(
    page,
    `the filter narrows the plot to ${storm}`,
    (comm) => {
      const lis = [...document.querySelectorAll('[data-plot="groups"] .legend li')];
      return lis.length > 0 && lis.every((li) => li.dataset.series.endsWith(`/${comm}/count`));
    },
    storm,
    15000,
  );
  await page.fill('#group-filter', '');

  // Kernel threads alone in their group (cpuhp/0, one per cpu) are hidden
  // as htop hides them, until "kernel threads" is ticked.
  await page.fill('#group-filter', 'cpuhp/');
  await waitFor(
    page,
    'lone kernel threads hidden by default, and said to be',
    () => document.querySelectorAll('#groups tbody tr').length === 0 && /kernel threads hidden/.test(document.querySelector('#groups-more').textContent),
    null,
    10000,
  );
  await page.check('#group-kernel');
  await waitFor(
    page,
    'lone kernel threads listed when asked for',
    () => [...document.querySelectorAll('#groups td.comm')].some((td) => td.textContent.startsWith('cpuhp/')),
    null,
    10000,
  );
  await page.uncheck('#group-kernel');
  await waitFor(page, 'and hidden again', () => document.querySelectorAll('#groups tbody tr').length === 0, null, 10000);
  await page.fill('#group-filter', '');

  // Hostile names: found as text through the filter, never as markup.
  for (const name of hostile) {
    await page.fill('#group-filter', name.slice(1, 6));
    const found = await waitFor(
      page,
      `hostile command ${JSON.stringify(name)} renders as text`,
      (n) => [...document.querySelectorAll('#groups td.comm')].some((td) => td.textContent === n && td.children.length === 0),
      name,
      10000,
    );
    void found;
  }
  await page.fill('#group-filter', '');
}

// fixtureChecks: a host in trouble, as the imapd-storm snapshot has it.
async function fixtureChecks(page) {
  await waitFor(page, 'status is critical', () => document.querySelector('#status').dataset.severity === 'critical');
  const n = await page.evaluate(() => document.querySelectorAll('#findings .finding[data-severity="critical"]').length);
  check(n >= 1, `critical findings shown first (${n})`);
  const first = await page.evaluate(() => document.querySelector('#findings .finding')?.dataset.severity);
  check(first === 'critical', `the worst finding is first (${first})`);
  await waitFor(page, 'a beancounter gauge', () => document.querySelectorAll('#beancounters .gauge').length > 0);
  await waitFor(page, 'tcp_max_orphans drawn on the orphans plot', () => {
    const li = document.querySelector('[data-plot="orphans"] .legend li[data-series="kernel.tcp_max_orphans"]');
    return li && Number(li.dataset.last) === 65536 && document.querySelector('[data-plot="orphans"] canvas');
  });
  await waitFor(page, 'the imapd storm on the process-group plot', () =>
    [...document.querySelectorAll('[data-plot="groups"] .legend li')].some((li) => li.dataset.series === 'group/alice/imapd/count' && Number(li.dataset.last) >= 90),
  );
  await waitFor(page, "the kernel's OOM kill of an imapd, with its cgroup", () =>
    [...document.querySelectorAll('#kernel tbody tr[data-kind="oom-kill"]')].some((tr) => tr.cells[3].textContent.startsWith('1999 imapd') && tr.cells[4].textContent === '/user.slice/user-1001.slice'),
  );
  await waitFor(page, 'the orphan resets counted', () => document.querySelector('#kernel-summary').textContent.includes('tcp-orphans ×14'));
  const kernelRows = await page.evaluate(() => document.querySelectorAll('#kernel tbody tr').length);
  check(kernelRows >= 3, `the kernel's latest messages listed (${kernelRows})`);
  const escaped = env('DASH_ESCAPED', '');
  if (escaped) {
    await waitFor(page, `control characters shown escaped: ${escaped}`, (e) => [...document.querySelectorAll('#groups td.comm')].some((td) => td.textContent === e), escaped);
  }
}

// windowChecks: on every server of DASH_WINDOWS, each plot drawn spans
// the chosen window ending now, whatever the number of samples; with none,
// no plot is drawn at all.
async function windowChecks(ctx) {
  const sites = JSON.parse(env('DASH_WINDOWS', '[]'));
  check(sites.length > 0, `servers to check (${sites.length})`);
  for (const { url: site, samples } of sites) {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    try {
      await page.goto(`${site}#window=1h`, { waitUntil: 'load' });
      await waitFor(page, `${samples} samples: first refresh rendered`, () => document.body.dataset.updated);
      for (const [label, secs] of [['1h', 3600], ['6h', 6 * 3600]]) {
        // The window buttons, as an administrator switches.
        await page.click(`#windows button[data-window="${label}"]`);
        if (samples === 0) {
          await page.waitForTimeout(500);
          const drawn = await page.evaluate(() => [...document.querySelectorAll('[data-plot]')].filter((f) => f.querySelector('canvas') || f.dataset.xMin).map((f) => f.dataset.plot));
          check(drawn.length === 0, `0 samples, ${label}: no plot drawn (${drawn.join(', ') || 'none'})`);
          const empty = await page.evaluate(() => [...document.querySelectorAll('[data-plot] .empty')].filter((p) => !p.hidden).length);
          check(empty === 5, `0 samples, ${label}: every plot says it has nothing (${empty} of 5)`);
          continue;
        }
        await waitFor(
          page,
          `${samples} samples, ${label}: plots drawn for the window`,
          (secs) => {
            const figs = [...document.querySelectorAll('[data-plot]')].filter((f) => f.dataset.xMax);
            return figs.length >= 3 && figs.every((f) => Math.abs(Number(f.dataset.xMax) - Number(f.dataset.xMin) - secs) < 1);
          },
          secs,
          15000,
        );
        const spans = await page.evaluate(() =>
          [...document.querySelectorAll('[data-plot]')].filter((f) => f.dataset.xMax).map((f) => ({ plot: f.dataset.plot, min: Number(f.dataset.xMin), max: Number(f.dataset.xMax) })),
        );
        const now = Date.now() / 1000;
        for (const s of spans) {
          const width = s.max - s.min;
          const lag = now - s.max;
          check(Math.abs(width - secs) < 1 && lag >= -1 && lag < 15, `${samples} samples, ${label}: ${s.plot} spans ${Math.round(width)} s ending ${lag.toFixed(1)} s ago (want ${secs} s ending now)`);
        }
      }
    } finally {
      await page.close();
    }
  }
}

// forecastChecks: each projection of DASH_FORECASTS is drawn on its plot
// along the fit, meeting its limit at the ETA's x as uPlot places it
// (valToPos, asked in the page), or running to the right edge when the ETA
// is beyond one more window; its label is the text wanted at that point;
// the plots of DASH_FLAT draw none and end now.
async function forecastChecks(page) {
  const wants = JSON.parse(env('DASH_FORECASTS', '[]'));
  const flat = JSON.parse(env('DASH_FLAT', '[]'));
  check(wants.length > 0, `projections to look for (${wants.length})`);
  const plots = [...new Set(wants.map((w) => w.plot))];
  for (const [label, secs] of [['1h', 3600], ['6h', 6 * 3600]]) {
    await page.click(`#windows button[data-window="${label}"]`);
    await waitFor(
      page,
      `${label}: projections drawn on ${plots.join(', ')}`,
      ([plots, n, secs]) => {
        let k = 0;
        for (const id of plots) {
          const f = document.querySelector(`[data-plot="${id}"]`);
          if (!f || !f.dataset.projections || !f.uplot) return false;
          // Drawn for this window: at least its width.
          if (Number(f.dataset.xMax) - Number(f.dataset.xMin) < secs - 1) return false;
          k += JSON.parse(f.dataset.projections).length;
        }
        return k === n;
      },
      [plots, wants.length, secs],
      20000,
    );
    const now = Date.now() / 1000;
    for (const w of wants) {
      const got = await page.evaluate(
        ({ w }) => {
          const fig = document.querySelector(`[data-plot="${w.plot}"]`);
          const u = fig.uplot;
          const pr = JSON.parse(fig.dataset.projections).find((p) => p.series === w.series && p.limit === w.limit);
          if (!pr) return { missing: true };
          const end = Math.min(w.at + w.eta, u.scales.x.max);
          // Where uPlot puts the meeting point and the limit, in canvas
          // pixels, asked of the chart itself.
          const want = { x: u.valToPos(end, 'x', true), limitY: u.valToPos(w.max, 'y', true), x0: u.valToPos(w.at, 'x', true) };
          // The dashed line's pixels: sample along it, look for its color
          // within 2 px of each point.
          const ctx = u.ctx;
          const [r, g, b] = pr.color.match(/[0-9a-f]{2}/gi).map((h) => parseInt(h, 16));
          let hits = 0;
          const tries = 12;
          for (let i = 1; i <= tries; i++) {
            const t = 0.1 + (0.8 * i) / tries;
            const x = pr.px[0] + (pr.px[2] - pr.px[0]) * t;
            const y = pr.px[1] + (pr.px[3] - pr.px[1]) * t;
            const d = ctx.getImageData(Math.round(x) - 2, Math.round(y) - 2, 5, 5).data;
            for (let j = 0; j < d.length; j += 4) {
              if (Math.abs(d[j] - r) < 40 && Math.abs(d[j + 1] - g) < 40 && Math.abs(d[j + 2] - b) < 40 && d[j + 3] > 128) {
                hits++;
                break;
              }
            }
          }
          const labels = [...fig.querySelectorAll('.u-over .eta')].filter((e) => e.dataset.series === w.series && e.dataset.limit === w.limit);
          const el = labels[0];
          return {
            pr,
            want,
            xMax: u.scales.x.max,
            hits,
            tries,
            labels: labels.length,
            text: el ? el.textContent : null,
            children: el ? el.children.length : -1,
            labelX: el ? Number(el.dataset.x) : NaN,
            labelWantX: u.valToPos(end, 'x'),
            // The label's box, in the plot's CSS pixels: right-aligned
            // to its point unless the plot is too narrow for it.
            labelRight: el ? el.offsetLeft + el.offsetWidth : NaN,
            labelLeft: el ? el.offsetLeft : NaN,
            overWidth: u.over.clientWidth,
          };
        },
        { w },
      );
      const what = `${label}: ${w.limit} on ${w.plot}`;
      if (got.missing) {
        check(false, `${what}: no projection`);
        continue;
      }
      const meets = w.at + w.eta <= got.xMax + 0.5;
      check(got.pr.meets === meets, `${what}: ${meets ? 'meets the limit on the plot' : 'runs to the right edge (ETA beyond the window)'}`);
      check(Math.abs(got.pr.px[2] - got.want.x) < 0.5, `${what}: ends at x ${got.pr.px[2].toFixed(1)} px, valToPos(${meets ? 'at + ETA' : 'the right edge'}) is ${got.want.x.toFixed(1)} px`);
      check(Math.abs(got.pr.px[0] - got.want.x0) < 0.5, `${what}: starts at the look the fit was made at (${got.pr.px[0].toFixed(1)} px, want ${got.want.x0.toFixed(1)})`);
      if (meets) check(Math.abs(got.pr.px[3] - got.want.limitY) < 0.5, `${what}: meets the limit at y ${got.pr.px[3].toFixed(1)} px, valToPos(limit) is ${got.want.limitY.toFixed(1)} px`);
      else check(got.pr.px[3] > got.want.limitY, `${what}: still below the limit at the edge (${got.pr.px[3].toFixed(1)} px, limit at ${got.want.limitY.toFixed(1)} px)`);
      check(Math.abs(got.pr.limitPx - got.want.limitY) < 0.5, `${what}: the limit drawn at y ${got.pr.limitPx.toFixed(1)} px (valToPos ${got.want.limitY.toFixed(1)})`);
      check(got.hits >= got.tries - 3, `${what}: the dashed line is on the canvas (${got.hits} of ${got.tries} points along it in its color)`);
      check(got.labels === 1 && got.text === w.label && got.children === 0, `${what}: labelled ${JSON.stringify(got.text)} as text (want ${JSON.stringify(w.label)})`);
      check(Math.abs(got.labelX - got.labelWantX) < 0.5, `${what}: the label at the end point (${got.labelX.toFixed(1)} px, want ${got.labelWantX.toFixed(1)})`);
      check(got.labelLeft === 0 || Math.abs(got.labelRight - got.labelWantX) < 1.5, `${what}: the label ends at its point (${got.labelRight} px)`);
      check(got.labelLeft >= 0 && got.labelRight <= got.overWidth + 0.5, `${what}: the label is inside the plot (${got.labelLeft}..${got.labelRight} of ${got.overWidth} px)`);
    }
    // The axis: widened to the farthest meeting point, at most one
    // window more.
    for (const id of plots) {
      const ends = wants.filter((w) => w.plot === id).map((w) => w.at + w.eta);
      const want = Math.min(Math.max(...ends), now + secs);
      const xMax = await page.evaluate((id) => Number(document.querySelector(`[data-plot="${id}"]`).dataset.xMax), id);
      check(Math.abs(xMax - want) < 15, `${label}: ${id}'s axis ends at ${new Date(xMax * 1000).toISOString()} (want ${new Date(want * 1000).toISOString()})`);
    }
    for (const id of flat) {
      const got = await page.evaluate(
        (id) => {
          const f = document.querySelector(`[data-plot="${id}"]`);
          return { drawn: !!f.querySelector('canvas'), proj: f.dataset.projections || '', labels: f.querySelectorAll('.eta').length, xMax: Number(f.dataset.xMax) };
        },
        id,
      );
      check(got.drawn && got.proj === '' && got.labels === 0, `${label}: flat ${id} is plotted with no projection and no label (${got.proj || 'none'}, ${got.labels} labels)`);
      check(Math.abs(got.xMax - Date.now() / 1000) < 15, `${label}: flat ${id} ends now`);
    }
    await page.locator('#plots').screenshot({ path: join(out, `dashboard-forecast-${label}.png`) });
    console.log(`     screenshot ${join(out, `dashboard-forecast-${label}.png`)}`);
  }
  await page.click('#windows button[data-window="1h"]');
}

const profile = mkdtempSync(join(tmpdir(), 'picket-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  colorScheme: 'light',
  timeout: 60000,
});
let page;
try {
  page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url || ''})`);
    else if (m.type() === 'warning') console.log(`     console warning: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('dialog', async (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  page.on('requestfailed', (r) => consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  // Nothing may leave 127.0.0.1: no CDN, no fonts from elsewhere.
  const origin = new URL(url).origin;
  const snapshotURLs = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/snapshot')) snapshotURLs.push(r.url());
    if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) consoleErrors.push(`request to another origin: ${r.url()}`);
  });

  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp && resp.ok(), `page loads (${resp && resp.status()})`);
  await waitFor(page, 'first refresh rendered', () => document.body.dataset.updated);
  await waitFor(page, 'findings rendered', () => document.querySelector('#findings').children.length > 0 && document.querySelector('#status').textContent !== 'loading');
  await waitFor(page, 'gauges rendered (pid_max, threads-max, file-max)', () => ['pid-max', 'threads-max', 'file-nr'].every((g) => document.querySelector(`[data-gauge="${g}"]`)));

  // The page asks for the heaviest rows, not every process of the host.
  check(snapshotURLs.length > 0 && snapshotURLs.every((u) => /[?&]top=\d+/.test(u)), `the snapshot is asked for with ?top= (${snapshotURLs[0]})`);
  if (mode === 'live') await liveChecks(page);
  else if (mode === 'window') await windowChecks(ctx);
  else if (mode === 'forecast') await forecastChecks(page);
  else await fixtureChecks(page);
  if (rule) {
    await waitFor(page, `hostile rule name ${JSON.stringify(rule)} renders as text in the journal`, (r) => [...document.querySelectorAll('#journal td')].some((td) => td.textContent.startsWith(r) && td.children.length === 0), rule);
  }
  if (throttle) {
    await waitFor(page, `throttle ${throttle} listed as active`, (id) => [...document.querySelectorAll('#active tbody tr')].some((tr) => tr.dataset.id === id), throttle);
    const n = await page.evaluate(() => document.querySelectorAll('#active tbody tr[data-id]').length);
    check(n === 1, `only the active throttle is listed as active (${n} rows)`);
    const state = await page.evaluate((id) => document.querySelector(`#active tbody tr[data-id="${id}"]`)?.dataset.state, throttle);
    check(state === 'active', `the throttle's state is active (${state})`);
  }
  const markup = await page.evaluate(() => ({
    b: document.querySelectorAll('main b').length,
    img: document.querySelectorAll('img').length,
    scripts: document.querySelectorAll('script').length,
  }));
  check(markup.b === 0 && markup.img === 0 && markup.scripts === 2, `no element created from a name (b ${markup.b}, img ${markup.img}, scripts ${markup.scripts})`);

  // Other windows re-query the history.
  await page.click('#windows button[data-window="6h"]');
  await waitFor(page, '6h window selected and plotted', () => document.querySelector('#windows button[data-window="6h"]').ariaPressed === 'true' && location.hash === '#window=6h' && document.querySelector('[data-plot="groups"] canvas'));
  await page.click('#windows button[data-window="1h"]');
  await page.waitForTimeout(1500);

  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(out, `dashboard-${mode}.png`), fullPage: true });
  console.log(`     screenshot ${join(out, `dashboard-${mode}.png`)}`);

  // A phone: one column, nothing wider than the screen but the tables'
  // own scrollers.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(1000);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no sideways scrolling on a 390px screen (${overflow}px too wide)`);
  await page.screenshot({ path: join(out, `dashboard-${mode}-phone.png`), fullPage: false });
  console.log(`     screenshot ${join(out, `dashboard-${mode}-phone.png`)}`);
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ':\n  ' + consoleErrors.join('\n  ') : ''}`);
check(dialogs.length === 0, `no dialogs${dialogs.length ? ': ' + dialogs.join('; ') : ''}`);
console.log(problems.length === 0 ? 'dashboard: all checks passed' : `dashboard: ${problems.length} checks failed`);
process.exit(problems.length === 0 ? 0 : 1);
