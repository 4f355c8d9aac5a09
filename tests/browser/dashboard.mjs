// Drives the dashboard in headless Chromium: sign in, open the board, open a running ticket,
// watch a live event arrive on its run page, cancel the run. Screenshots go to
// target/browser-artifacts/.
//
//   node tests/browser/dashboard.mjs <base-url> <admin-token> <run-id> [issue-number]
//
// Run by `FORGEHAND_BROWSER_TESTS=1 cargo test --test it browser_dashboard`, which starts a
// server with a slow scripted agent and passes the arguments.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [base, token, runId, number] = process.argv.slice(2);
if (!base || !token || !runId) {
  console.error('usage: dashboard.mjs <base-url> <admin-token> <run-id> [issue-number]');
  process.exit(2);
}
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
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const check = (ok, message) => { if (!ok) { throw new Error(message); } };

try {
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
  const board = await page.locator('.board').evaluate((b) => [b.scrollWidth, b.clientWidth]);
  check(board[0] <= board[1] + 1, `the board's columns overflow 1400 px: ${board}`);
  await shot('02-board');

  step = 'ticket';
  await Promise.all([page.waitForURL(/\/tickets\/github\/octo\/app\/\d+$/), card.locator('.t a').click()]);
  if (number) { check(page.url().endsWith(`/${number}`), `ticket page ${page.url()}`); }
  await page.getByRole('heading', { level: 1 }).filter({ hasText: '<b>Browser</b> ticket' }).waitFor();
  await shot('03-ticket');

  step = 'run page';
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
  await shot('04-run-live');

  step = 'cancel';
  await Promise.all([page.waitForURL(/\/runs\/\d+\?notice=/), page.click('#cancel')]);
  await page.getByText('Cancel requested.').waitFor();
  await page.waitForFunction(() => document.getElementById('run-state').textContent.trim() === 'canceled',
    null, { timeout: 20000 });
  await shot('05-run-canceled');

  step = 'narrow screen';
  await page.setViewportSize({ width: 390, height: 800 });
  for (const path of ['/', '/board', `/runs/${runId}`, '/deliveries', '/activity', '/agents', '/repos']) {
    await page.goto(`${base}${path}`);
    const [wide, view] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(wide <= view + 1, `${path} is ${wide} px wide on a ${view} px screen`);
  }
  await shot('06-narrow');

  check(problems.length === 0, problems.join('; '));
  console.log(`browser test passed: signed in, board, ticket, ${after.length - before.length} live event(s), canceled run ${runId}`);
  await browser.close();
} catch (e) {
  console.error(`browser test failed at ${step}: ${e.stack || e}`);
  if (problems.length) { console.error(problems.join('\n')); }
  try { await shot('failure'); } catch { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
