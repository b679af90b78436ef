// Headless Chromium as every browser script here starts it: Debian's binary (CHROMIUM overrides
// /usr/bin/chromium), through playwright-core, with a fresh temporary profile (Playwright
// creates and removes it), no sandbox or GPU (containers), no background traffic, autoplay
// allowed, and hidden windows kept rendering at full rate (several viewers in one browser).
import { chromium } from "playwright-core";

// `extraArgs`: more switches (the publish test's fake camera and microphone).
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
      "--disable-renderer-backgrounding",
      ...extraArgs,
    ],
  });
}

// Exits with status 3 if the script is still running `seconds` from now: never outlive the
// caller. Returns the timer (clear it when done).
export function hardStop(name, seconds) {
  return setTimeout(() => { console.error(`${name}: hard timeout`); process.exit(3); }, seconds * 1000);
}
