// Opens the dashboard of a running coordinator in Debian's chromium (headless, driven by
// npm's playwright-core; no browser download), waits until the loss chart holds at least
// MIN_POINTS points and the workers table lists MIN_WORKERS workers, and saves a screenshot.
//   node dashboard_browser.mjs URL SCREENSHOT.png [MIN_POINTS] [MIN_WORKERS]
// Exit 0 on success; 1 with a message on stderr otherwise. Found via NODE_PATH.
import { createRequire } from "node:module";

const [url, screenshot, minPoints = "20", minWorkers = "2"] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.LANLM_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in CI containers cannot use chromium's sandbox; /dev/shm may be tiny there.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForFunction(
    ([p, w]) => window.lanlmDashboard && window.lanlmDashboard.lossPoints >= p && window.lanlmDashboard.workerRows >= w,
    [Number(minPoints), Number(minWorkers)], { timeout: 60000, polling: 200 });
  const drawn = await page.evaluate(() => ({
    points: window.lanlmDashboard.lossPoints,
    workers: document.querySelectorAll("#workers-table tbody tr").length,
    charts: document.querySelectorAll(".uplot").length,
    hasUplot: typeof uPlot !== "undefined",
  }));
  if (!drawn.hasUplot || drawn.charts < 4) throw new Error("charts not drawn: " + JSON.stringify(drawn));
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  await page.waitForTimeout(300);  // let the last poll paint
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(drawn));
} catch (e) {
  console.error("dashboard_browser: " + e.message);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
