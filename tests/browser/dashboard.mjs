// Drives the dashboard in headless Chromium against a running scenario: the styled 404 and the
// favicon, sign-in, the board (blocked badge, overflow cue), the overview's cards, hostile
// markdown on a ticket page, a run page following a 520-event run live to its pull request, a
// cancel, and every page at 390 px. Screenshots go to target/browser-artifacts/.
//
//   node tests/browser/dashboard.mjs <base-url> <admin-token> <plan-json>
//
// The plan names the scenario's tickets and runs: {"ticker": {"run", "number"}, "flood": {"run",
// "number", "go"}, "blocked": {"number"}}; `go` is the file whose creation starts the flood.
// Run by `FORGEHAND_BROWSER_TESTS=1 cargo test --test it browser_dashboard`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [base, token, planText] = process.argv.slice(2);
if (!base || !token || !planText) {
  console.error('usage: dashboard.mjs <base-url> <admin-token> <plan-json>');
  process.exit(2);
}
const plan = JSON.parse(planText);
const ticketPath = (n) => `/tickets/github/octo/app/${n}`;
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const artifacts = join(root, 'target', 'browser-artifacts');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20000);
const problems = [];
page.on('dialog', async (d) => { problems.push(`a dialog opened: ${d.message()}`); await d.dismiss(); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

let step = 'start';
const shot = (name, fullPage = true) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage });
const check = (ok, message) => { if (!ok) { throw new Error(message); } };

/// What content could have run on the current page: `window.__pwned`, script elements inside
/// rendered markdown, `javascript:` links, inline event handlers.
const hostileTraces = () => page.evaluate(() => ({
  pwned: typeof window.__pwned,
  scripts: document.querySelectorAll('.markdown script, .timeline script').length,
  jsLinks: [...document.querySelectorAll('a[href]')].filter((a) => /^\s*javascript:/i.test(a.getAttribute('href'))).length,
  handlers: [...document.querySelectorAll('main *')].filter((el) => [...el.attributes].some((a) => /^on/i.test(a.name))).length,
}));

try {
  step = 'unknown route and favicon';
  const missing = await page.goto(`${base}/no/such/page`);
  check(missing.status() === 404, `an unknown route answered ${missing.status()}`);
  await page.getByRole('heading', { level: 1 }).filter({ hasText: '404' }).waitFor();
  check(await page.locator('header.top a.brand').isVisible(), 'the 404 page has no dashboard header');
  check((await page.locator('main').innerText()).includes('/no/such/page'), 'the 404 page does not say what is missing');
  check(await page.evaluate(() => getComputedStyle(document.body).margin === '0px'), 'the 404 page is unstyled');
  const iconHref = await page.locator('link[rel=icon]').getAttribute('href');
  for (const path of [iconHref, '/favicon.ico']) {
    const icon = await context.request.get(`${base}${path}`);
    check(icon.status() === 200 && icon.headers()['content-type'].startsWith('image/svg+xml')
      && (await icon.text()).includes('<svg'), `the favicon at ${path}: ${icon.status()} ${icon.headers()['content-type']}`);
  }
  await shot('00-not-found');

  step = 'sign in';
  await page.goto(`${base}/board`);
  check(new URL(page.url()).pathname === '/login', `expected the sign-in page, got ${page.url()}`);
  await shot('01-login');
  await page.fill('input[name=token]', 'wrong-token');
  await page.click('button[type=submit]');
  await page.getByText('That is not the admin token.').waitFor();
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(`${base}/board`), page.click('button[type=submit]')]);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'forgehand_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', `session cookie: ${JSON.stringify(session)}`);

  step = 'board';
  const card = page.locator('.card', { hasText: '<b>Browser</b> ticket' });
  await card.waitFor();
  check((await page.locator('.card b').count()) === 0, 'a hostile title became markup');
  const column = await card.locator('xpath=ancestor::div[contains(@class, "column")]').getAttribute('data-status');
  check(column === 'in-progress', `the card is in ${column}, not in-progress`);
  check((await page.locator('.board .column').count()) === 7, 'the board does not show the 7 default columns');
  // At 1400 px the 7 columns fit; the board still scrolls inside itself, and its cue says so
  // exactly when it does not fit.
  const board = await page.locator('.board').evaluate((b) => ({
    overflow: getComputedStyle(b).overflowX, wide: b.scrollWidth, box: b.clientWidth,
    page: document.documentElement.scrollWidth, view: window.innerWidth,
  }));
  check(['auto', 'scroll'].includes(board.overflow), `the board does not scroll: overflow-x ${board.overflow}`);
  check(board.wide <= board.box + 1, `7 columns overflow 1400 px: ${JSON.stringify(board)}`);
  check(board.page <= board.view, `the board widens the page: ${JSON.stringify(board)}`);
  check((await page.locator('.board-wrap .board-cue').count()) === 1, 'the board has no overflow cue');
  check(await page.locator('.board-cue').isHidden(), 'the overflow cue shows on a board that fits');
  const blocked = page.locator('.card', { hasText: `#${plan.blocked.number} Blocked ticket` });
  const badge = blocked.locator('.badge', { hasText: /^blocked$/ });
  check(await badge.isVisible(), 'the blocked card shows no "blocked" badge');
  check((await badge.getAttribute('title')).includes(`#${plan.ticker.number}`), 'the blocked badge does not say by what');
  check((await card.locator('.badge', { hasText: /^blocked$/ }).count()) === 0, 'a card that is not blocked says it is');
  await shot('02-board');

  step = 'overview';
  await page.goto(`${base}/`);
  const tops = await page.locator('.cards .stat').evaluateAll((cards) => cards.map((c) => c.getBoundingClientRect().top));
  check(tops.length === 6 && new Set(tops).size === 1, `the overview's cards wrap: tops ${tops}`);
  const overview = await page.locator('main').innerText();
  check(!/\$0\.0000\b/.test(overview), 'a cost shows as $0.0000');
  check(!/\b1 turns\b/.test(overview), 'the overview says "1 turns"');
  await shot('03-overview');

  step = 'ticket with hostile markdown';
  await page.goto(`${base}${ticketPath(plan.ticker.number)}`);
  await page.getByRole('heading', { level: 1 }).filter({ hasText: '<b>Browser</b> ticket' }).waitFor();
  const comment = page.locator('.timeline .markdown', { hasText: 'Summary' });
  await comment.waitFor();
  await page.waitForLoadState('load');
  check((await comment.locator('strong').innerText()) === 'Summary', 'the comment\'s markdown was not rendered');
  const ticketText = await page.locator('main').innerText();
  check(!ticketText.includes('forgehand:progress'), 'the progress marker shows as text');
  check((await comment.locator('img, script').count()) === 0, 'an image or a script survived in a comment');
  const traces = await hostileTraces();
  check(traces.pwned === 'undefined', `hostile markdown ran: window.__pwned is ${traces.pwned}`);
  check(traces.scripts === 0 && traces.jsLinks === 0 && traces.handlers === 0, `hostile traces: ${JSON.stringify(traces)}`);
  const trap = comment.locator('a', { hasText: 'a trap' });
  if (await trap.count()) {
    check(!/^\s*javascript:/i.test((await trap.getAttribute('href')) || ''), 'a javascript: link survived');
  }
  await shot('04-ticket');

  step = 'run page';
  const runId = plan.ticker.run;
  await Promise.all([
    page.waitForURL(`${base}/runs/${runId}`),
    page.locator(`a[href="/runs/${runId}"]`).first().click(),
  ]);
  await page.locator('#live').waitFor();
  const seqs = async () => page.locator('#events li.event').evaluateAll(
    (items) => items.map((li) => Number(li.dataset.seq)));
  const before = await seqs();
  const last = before.length ? Math.max(...before) : 0;
  step = 'live event';
  await page.waitForFunction(
    (last) => [...document.querySelectorAll('#events li.event')].some((li) => Number(li.dataset.seq) > last),
    last, { timeout: 20000 });
  const after = await seqs();
  check(after.length > before.length, `no live event: ${before.length} → ${after.length}`);
  check(new Set(after).size === after.length, 'an event arrived twice');
  await shot('05-run-live');

  step = 'cancel';
  await Promise.all([page.waitForURL(/\/runs\/\d+\?notice=/), page.click('#cancel')]);
  await page.getByText('Cancel requested.').waitFor();
  await page.waitForFunction(() => document.getElementById('run-state').textContent.trim() === 'canceled',
    null, { timeout: 20000 });
  await shot('06-run-canceled');

  step = 'a 520-event run, followed live';
  await page.goto(`${base}/runs/${plan.flood.run}`);
  await page.locator('#live').waitFor();
  const pending = await page.evaluate(() => ({
    finished: document.getElementById('run-finished').textContent.trim(),
    took: document.getElementById('run-took').textContent.trim(),
    pull: document.querySelectorAll('#run-pull a').length,
    events: document.querySelectorAll('#events li.event').length,
  }));
  check(pending.pull === 0, 'a pull request link before the run opened one');
  writeFileSync(plan.flood.go, '');
  // Looked at while the events pour in: the newest one is always on screen.
  const tail = () => page.evaluate(() => {
    const items = document.querySelectorAll('#events li.event');
    const last = items[items.length - 1];
    if (!last) { return { count: 0, seen: true, done: false }; }
    const box = last.getBoundingClientRect();
    return {
      count: items.length,
      seen: box.bottom > 0 && box.top < window.innerHeight,
      done: !!document.querySelector('#events li.event.result'),
    };
  });
  let now = await tail();
  let samples = 0;
  const deadline = Date.now() + 30000;
  while (!now.done) {
    check(Date.now() < deadline, `the run page stopped at ${now.count} events`);
    check(now.seen, `the page stopped following the tail at event ${now.count}`);
    if (now.count > pending.events) { samples += 1; }
    await page.waitForTimeout(100);
    now = await tail();
  }
  check(samples >= 3, `only ${samples} look(s) while the events arrived: not a live run`);
  check(now.seen, 'the last event is not on screen');
  const flood = await seqs();
  check(flood.length >= 520, `${flood.length} events shown, the agent printed 520 and a result`);
  check(flood.every((s, i) => i === 0 || s === flood[i - 1] + 1), 'events are missing, doubled or out of order');
  check((await page.getByText('flood line 520', { exact: true }).count()) === 1, 'the 520th line is not shown once');
  step = 'the finished run, live';
  await page.waitForFunction(() => document.getElementById('run-state').textContent.trim() === 'succeeded',
    null, { timeout: 20000 });
  const pull = page.locator('#run-pull a');
  await pull.waitFor();
  check(/^pull request #\d+$/.test(await pull.innerText()), `the pull request link says "${await pull.innerText()}"`);
  check(/^https?:\/\//.test(await pull.getAttribute('href')), `the pull request link goes to ${await pull.getAttribute('href')}`);
  const ended = await page.evaluate(() => ({
    finished: document.getElementById('run-finished').textContent.trim(),
    took: document.getElementById('run-took').textContent.trim(),
    live: document.getElementById('live').textContent.trim(),
  }));
  check(ended.finished !== pending.finished && /\d/.test(ended.finished), `finished: ${pending.finished} → ${ended.finished}`);
  check(ended.took !== pending.took && /\d/.test(ended.took), `duration: ${pending.took} → ${ended.took}`);
  await page.waitForFunction(() => document.getElementById('live').textContent.trim() === 'ended');
  await shot('07-run-flooded', false);

  step = 'narrow screen';
  await page.setViewportSize({ width: 390, height: 800 });
  const narrow = [
    '/', '/board', ticketPath(plan.ticker.number), ticketPath(plan.flood.number),
    ticketPath(plan.blocked.number), `/runs/${plan.ticker.run}`, `/runs/${plan.flood.run}`,
    '/deliveries', '/activity', '/agents', '/repos', '/repos/github/octo/app/config', '/audit',
    '/no/such/page',
  ];
  for (const path of narrow) {
    await page.goto(`${base}${path}`);
    const layout = await page.evaluate(() => {
      const scroller = (el) => {
        for (let e = el; e && e !== document.body; e = e.parentElement) {
          if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) { return e; }
        }
        return null;
      };
      return {
        wide: document.documentElement.scrollWidth,
        view: window.innerWidth,
        // A table wider than the screen must scroll inside a box of its own that fits.
        tables: [...document.querySelectorAll('main table')].filter((t) => t.scrollWidth > window.innerWidth)
          .map((t) => { const s = scroller(t); return s ? s.getBoundingClientRect().right - window.innerWidth : 'none'; })
          .filter((over) => over === 'none' || over > 1),
      };
    });
    check(layout.wide <= layout.view, `${path} is ${layout.wide} px wide on a ${layout.view} px screen`);
    check(layout.tables.length === 0, `${path}: tables that widen the screen: ${layout.tables}`);
    if (path === '/board') {
      const cue = page.locator('.board-cue');
      check(await cue.isVisible(), 'the board overflows 390 px with no cue');
      check(/^\d+ more →$/.test(await cue.innerText()), `the cue says "${await cue.innerText()}"`);
      await shot('08-narrow-board');
      await page.locator('.board').evaluate((b) => { b.scrollLeft = b.scrollWidth; });
      await cue.waitFor({ state: 'hidden' });
    }
  }
  await shot('09-narrow');

  check(problems.length === 0, problems.join('; '));
  console.log(`browser test passed: 404 and favicon, board, overview, hostile markdown, `
    + `${after.length - before.length} live event(s) and a cancel, ${flood.length} events followed live `
    + `(${samples} looks), ${narrow.length} pages at 390 px`);
  await browser.close();
} catch (e) {
  console.error(`browser test failed at ${step}: ${e.stack || e}`);
  if (problems.length) { console.error(problems.join('\n')); }
  try { await shot('failure'); } catch { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
