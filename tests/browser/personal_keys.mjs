// Drives the "my personal access keys" page in Debian's chromium with playwright-core.
// Input (env): KG_URL, KG_USER, KG_PASS, optional KG_SCREENSHOT (path of a PNG to write).
// Output: one JSON line {"key", "name", "deletedName"} on stdout; exit 1 on any failure.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const base = process.env.KG_URL;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const context = await browser.newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());

  // Not signed in: the keys page sends us to the login page.
  await page.goto(`${base}/account/keys`);
  assert.equal(new URL(page.url()).pathname, "/account/login");

  // A wrong password shows an error and stays on the page.
  await page.fill("#username", process.env.KG_USER);
  await page.fill("#password", "definitely-wrong");
  await page.click("#sign-in");
  await page.waitForSelector("#error:not([hidden])");

  await page.fill("#password", process.env.KG_PASS);
  await Promise.all([page.waitForURL(`${base}/account/keys`), page.click("#sign-in")]);
  await page.waitForSelector("#empty:not([hidden])");

  // Create a key: it is shown once, and can be copied.
  const name = "browser key";
  await page.fill("#name", name);
  await page.check('input[name=scope][value="Account.ReadWrite"]');
  await page.click("#create-button");
  await page.waitForSelector("#created:not([hidden])");
  const key = (await page.textContent("#new-key")).trim();
  assert.match(key, /^[a-z]{6}\.[A-Za-z0-9+/]{43}$/);
  await page.click("#copy");
  await page.waitForSelector("#copied:not([hidden])");
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(clip, key);
  await page.waitForSelector(`#keys tbody tr >> text=${name}`);
  if (process.env.KG_SCREENSHOT) await page.screenshot({ path: process.env.KG_SCREENSHOT, fullPage: true });

  // Bad input is refused with a readable message.
  await page.fill("#name", "no scopes");
  await page.click("#create-button");
  await page.waitForSelector("#create-error:not([hidden])");
  assert.match(await page.textContent("#create-error"), /scopes/);

  // After a reload the secret is gone from the page, the key is still listed by prefix.
  await page.reload();
  await page.waitForSelector(`#keys tbody tr >> text=${name}`);
  const html = await page.content();
  assert.ok(!html.includes(key.split(".")[1]), "the secret must not be shown again");
  assert.ok(html.includes(key.split(".")[0]), "the prefix is listed");

  // Create a second key and delete it from the page.
  const doomed = "short-lived";
  await page.fill("#name", doomed);
  await page.check('input[name=scope][value="Device.Read"]');
  await page.click("#create-button");
  await page.waitForSelector(`#keys tbody tr >> text=${doomed}`);
  await page.click(`#keys tbody tr:has-text("${doomed}") button.delete`);
  await page.waitForSelector(`#keys tbody tr >> text=${doomed}`, { state: "detached" });

  // Sign out: the page is closed to us again.
  await Promise.all([page.waitForURL(`${base}/account/login`), page.click("#logout")]);
  await page.goto(`${base}/account/keys`);
  assert.equal(new URL(page.url()).pathname, "/account/login");

  console.log(JSON.stringify({ key, name, deletedName: doomed }));
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
