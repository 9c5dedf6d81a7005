// forgetlab dashboard: live updates and chart controls, without reloading the page.
//
// Every page names a stamp URL (a fingerprint of the files it shows). The page polls it; when it
// changes, every element with data-live="<url>" is re-fetched (an HTML fragment or an SVG chart)
// and replaced in place. Controls (data-control) rewrite the query string of the live URLs in
// their group (data-group) and re-fetch those elements at once.
(function () {
  "use strict";
  const body = document.body;
  const stampUrl = body.dataset.stampUrl;
  const pollMs = Math.max(250, parseInt(body.dataset.pollMs || "2000", 10));
  const live = document.getElementById("live");
  let stamp = body.dataset.stamp || "";

  function setLive(text, cls) {
    if (!live) return;
    live.textContent = text;
    live.className = "live" + (cls ? " " + cls : "");
  }

  async function refresh(el) {
    const url = el.dataset.live;
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      el.innerHTML = await response.text();
      el.classList.remove("stale");
    } catch (err) {
      el.classList.add("stale");
      el.title = "could not refresh: " + err.message;
    }
  }

  function refreshAll(selector) {
    return Promise.all(Array.from(document.querySelectorAll(selector)).map(refresh));
  }

  async function poll() {
    if (!stampUrl) return;
    if (!document.hidden) {
      try {
        const response = await fetch(stampUrl, { cache: "no-store" });
        if (!response.ok) throw new Error(response.status);
        const current = (await response.json()).stamp;
        if (current !== stamp) {
          stamp = current;
          body.dataset.stamp = current;
          await refreshAll("[data-live]");
          setLive("updated " + new Date().toLocaleTimeString(), "updated");
        } else {
          setLive("live", "");
        }
      } catch (err) {
        setLive("offline (retrying)", "offline");
      }
    }
    setTimeout(poll, pollMs);
  }

  function groupParams(group) {
    const params = {};
    document.querySelectorAll('[data-control][data-group="' + group + '"]').forEach((c) => {
      const name = c.dataset.control;
      if (c.type === "checkbox" && c.dataset.multi !== undefined) {
        if (!(name in params)) params[name] = [];
        if (c.checked) params[name].push(c.value);
      } else if (c.type === "checkbox") {
        params[name] = c.checked ? "1" : "0";
      } else {
        params[name] = c.value;
      }
    });
    return params;
  }

  function applyControls(group) {
    const params = groupParams(group);
    const targets = document.querySelectorAll('[data-live][data-group="' + group + '"]');
    targets.forEach((el) => {
      const url = new URL(el.dataset.live, window.location.origin);
      for (const [name, value] of Object.entries(params)) {
        const v = Array.isArray(value) ? value.join(",") : value;
        if (v === "") url.searchParams.delete(name);
        else url.searchParams.set(name, v);
      }
      el.dataset.live = url.pathname + url.search;
      refresh(el);
    });
  }

  document.querySelectorAll("[data-control]").forEach((control) => {
    control.addEventListener("change", () => applyControls(control.dataset.group));
  });

  setTimeout(poll, pollMs);
})();
