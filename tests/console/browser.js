// browser.js CONFIG.json — drives the ledger console in Debian's chromium
// through playwright-core (no browser download) and prints what it saw as
// one JSON object on stdout; test_console.py compares it with the data it
// prepared.  Nothing is fetched from outside 127.0.0.1: every request the
// page makes is recorded, and any other host is refused and reported.
//
// CONFIG: {"url", "token", "shots" (screenshot directory), "profile" (a
// fresh --user-data-dir), "chromium" (executable), "account" (the one to
// click), "pack_of_other" (a pack id that the filter must hide)}.
'use strict';

const fs = require('fs');
const path = require('path');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { steps: [], console_errors: [], page_errors: [], outside_requests: [],
              failed_requests: [], api_requests: [], shots: [] };
let phase = 'normal';   // 'error-step': failures there are expected

function step(name) { out.steps.push(name); process.stderr.write('browser: ' + name + '\n'); }

async function rows(page, sel, cols) {
  return page.$$eval(sel, (trs, cols) => trs.map((tr) => {
    const o = { data: { ...tr.dataset } };
    for (const [k, cls] of Object.entries(cols)) {
      const td = tr.querySelector('td.' + cls);
      o[k] = td ? td.textContent : null;
    }
    o.cells = [...tr.querySelectorAll('td')].map((td) => td.textContent);
    return o;
  }), cols);
}

async function shot(page, name) {
  const file = path.join(cfg.shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  out.shots.push(file);
}

async function message(page) {
  return page.$eval('#message', (m) => ({ hidden: m.hidden, text: m.textContent, cls: m.className,
                                          height: m.getBoundingClientRect().height,
                                          lineHeight: parseFloat(getComputedStyle(m).lineHeight) }));
}

async function main() {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    out.fatal = 'playwright-core cannot be loaded (NODE_PATH=' + (process.env.NODE_PATH || '') +
                '): ' + e.message.split('\n')[0];
    return;
  }
  const ctx = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: cfg.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1400, height: 900 },
    timeout: 30000,
  });
  try {
    const origin = new URL(cfg.url).origin;
    // Only the ledger: anything else (a CDN, fonts) is refused and reported.
    await ctx.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(origin + '/') || u === origin) return route.continue();
      out.outside_requests.push(u);
      return route.abort();
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(10000);
    page.on('console', (m) => {
      if (m.type() === 'error') out.console_errors.push({ phase, text: m.text() });
    });
    page.on('pageerror', (e) => out.page_errors.push({ phase, text: String(e) }));
    page.on('requestfailed', (r) => out.failed_requests.push({ phase, url: r.url(),
                                                               why: (r.failure() || {}).errorText }));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/v1/')) out.api_requests.push({ phase, method: r.method(),
                                                                 path: u.pathname + u.search });
    });

    step('open the console');
    await page.goto(cfg.url, { waitUntil: 'load' });
    out.title = await page.title();
    out.tabs = await page.$$eval('nav.tabs [role=tab]', (bs) => bs.map((b) => b.textContent));

    step('minutes from exact µs');
    out.minutes = await page.evaluate((texts) => texts.map((t) => minutes(parseJSON(t).us)),
                                      cfg.minutes_cases);

    step('paste the admin token');
    await page.fill('#token', cfg.token);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#packs-body tr[data-pack]');
    out.packs_all = await rows(page, '#packs-body tr[data-pack]',
                               { total: 'total', reserved: 'reserved', remaining: 'remaining' });
    await shot(page, '1-packs');

    step('Accounts tab');
    await page.click('#tab-accounts');
    await page.waitForSelector('#accounts-body tr[data-account]');
    out.accounts = await rows(page, '#accounts-body tr[data-account]',
                              { packs: 'packs', total: 'total', used: 'used',
                                reserved: 'reserved', remaining: 'remaining' });
    out.accounts_message = await message(page);
    await shot(page, '2-accounts');

    step('Leases tab');
    await page.click('#tab-leases');
    await page.waitForSelector('#leases-body tr[data-lease]');
    out.leases_state = await page.$eval('#leases-filter select[name=state]', (s) => s.value);
    out.leases = await rows(page, '#leases-body tr[data-lease]',
                            { node: 'node', account: 'account', cls: 'class', granted: 'granted',
                              posted: 'posted', expires: 'expires', relative: 'relative',
                              state: 'status' });
    await shot(page, '3-leases');

    step('Leases: state released');
    await page.selectOption('#leases-filter select[name=state]', 'released');
    await page.waitForSelector('#leases-body tr[data-lease="' + cfg.released_lease + '"]');
    out.leases_released = await rows(page, '#leases-body tr[data-lease]',
                                     { account: 'account', state: 'status', relative: 'relative' });
    await shot(page, '3b-leases-released');

    step('Leases: state open, node filter of another node');
    await page.selectOption('#leases-filter select[name=state]', 'open');
    await page.waitForSelector('#leases-body tr[data-lease]');
    await page.fill('#leases-filter input[name=node]', cfg.other_node);
    await page.click('#leases-filter button[type=submit]');
    await page.waitForSelector('#leases-body td.empty');
    out.leases_other_node = await page.$eval('#leases-body', (b) => b.textContent);
    await page.fill('#leases-filter input[name=node]', '');

    step('click account ' + cfg.account);
    await page.click('#tab-accounts');
    await page.waitForSelector('#accounts-body tr[data-account]');
    await page.click('#accounts-body button.account-link >> text="' + cfg.account + '"');
    await page.waitForSelector('#view-packs:not([hidden])');
    await page.waitForFunction((other) => {
      const trs = [...document.querySelectorAll('#packs-body tr[data-pack]')];
      return trs.length > 0 && !trs.some((tr) => tr.dataset.pack === other);
    }, cfg.pack_of_other);
    out.packs_filtered = await rows(page, '#packs-body tr[data-pack]', {});
    out.packs_filter_value = await page.$eval('#packs-filter input[name=account]', (i) => i.value);
    out.usage_filter_value = await page.$eval('#usage-filter input[name=account]', (i) => i.value);
    out.leases_filter_value = await page.$eval('#leases-filter input[name=account]', (i) => i.value);
    await shot(page, '4-packs-filtered');

    step('Usage details, filtered');
    await page.click('#tab-usage');
    await page.waitForSelector('#usage-body tr td');
    await page.waitForFunction(() => !document.querySelector('#usage-body').textContent
                                   .includes('Enter the admin token'));
    out.usage_filtered = await rows(page, '#usage-body tr', {});
    await shot(page, '5-usage-filtered');

    step('Buy form: a pack for the account');
    await page.click('#tab-packs');
    await page.click('#view-packs details.buy summary');
    await page.selectOption('#buy-form select[name=type]', 'tsc');
    await page.fill('#buy-form input[name=minutes]', '7');
    await page.fill('#buy-form input[name=account]', cfg.account);
    await page.fill('#buy-form input[name=id]', cfg.buy_id);
    await page.click('#buy-form button[type=submit]');
    await page.waitForSelector('#packs-body tr[data-pack="' + cfg.buy_id + '"]');
    out.buy_message = await message(page);

    step('an API error: one line');
    phase = 'error-step';
    await page.fill('#packs-filter input[name=account]', 'no such account!');
    await page.click('#packs-filter button[type=submit]');
    await page.waitForSelector('#message.error:not([hidden])');
    out.error_message = await message(page);
    await shot(page, '6-error');
  } finally {
    await ctx.close();
  }
}

main().catch((e) => { out.fatal = String(e && e.stack ? e.stack : e); })
  .finally(() => { process.stdout.write(JSON.stringify(out) + '\n'); });
