// The page of `segue serve`: pick or drop photos, protect each one with POST /v1/protect,
// show it beside the original (and what changed, x30), download one or all. No framework,
// no CDN: this file is all there is.
"use strict";
(function () {
  const form = document.getElementById("protect-form");
  const input = document.getElementById("files");
  const drop = document.getElementById("drop");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const downloadAll = document.getElementById("download-all");
  const token = new URLSearchParams(location.search).get("token");
  if (token !== null) {
    // Read once, then out of the address bar and history: it must not be shared, bookmarked or sent as Referer.
    history.replaceState(null, "", location.pathname);
  }
  let picked = [];
  let done = [];

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function choose(files) {
    picked = Array.from(files).filter((f) => f.type.startsWith("image/") || /\.(heic|heif|avif)$/i.test(f.name));
    say(picked.length + " photo(s) chosen");
  }

  // A server without the cloak's extra cannot cloak: hide the box rather than offer an error.
  fetch("/v1/info", { headers: token ? { Authorization: "Bearer " + token } : {} })
    .then((r) => r.ok ? r.json() : null)
    .then((info) => {
      if (info && info.cloak === false) {
        const cloak = document.getElementById("cloak");
        cloak.checked = false;
        cloak.disabled = true;
        document.getElementById("cloak-row").hidden = true;
      }
    })
    .catch(() => { /* the box stays; the server says why if it cannot cloak */ });

  input.addEventListener("change", () => choose(input.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  document.getElementById("show-residual").addEventListener("change", (e) => {
    document.body.classList.toggle("residual-on", e.target.checked);
  });

  async function protectOne(file) {
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("identity", document.getElementById("identity").value);
    body.append("faces", document.getElementById("faces").value);
    body.append("strength", document.getElementById("strength").value);
    body.append("cloak", document.getElementById("cloak").checked ? "true" : "false");
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch("/v1/protect", { method: "POST", body, headers });
    if (!response.ok) {
      let problem = response.status + "";
      try { const j = await response.json(); problem = j.error + (j.hint ? " (" + j.hint + ")" : ""); } catch (_) { /* not JSON */ }
      throw new Error(file.name + ": " + problem);
    }
    return await response.blob();
  }

  function loaded(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = reject;
      img.src = url;
    });
  }

  async function residual(originalUrl, protectedUrl) {
    const [a, b] = await Promise.all([loaded(originalUrl), loaded(protectedUrl)]);
    const canvas = document.createElement("canvas");
    canvas.width = b.naturalWidth;
    canvas.height = b.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(a, 0, 0, canvas.width, canvas.height);
    const before = context.getImageData(0, 0, canvas.width, canvas.height);
    context.drawImage(b, 0, 0);
    const after = context.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < after.data.length; i += 4) {
      for (let c = 0; c < 3; c++) {
        after.data[i + c] = Math.max(0, Math.min(255, 128 + 30 * (after.data[i + c] - before.data[i + c])));
      }
      after.data[i + 3] = 255;
    }
    context.putImageData(after, 0, 0);
    canvas.className = "residual";
    canvas.setAttribute("aria-label", "what changed, 30 times stronger");
    return canvas;
  }

  function show(file, blob) {
    const originalUrl = URL.createObjectURL(file);
    const protectedUrl = URL.createObjectURL(blob);
    const name = file.name.replace(/\.[^.]*$/, "") + "-protected.png";
    const item = document.createElement("li");
    item.innerHTML = '<div class="pair"><figure><img alt=""><figcaption>original</figcaption></figure>' +
      '<figure><img class="protected" alt=""><figcaption>protected</figcaption></figure></div>' +
      '<p><a class="download">Download</a></p>';
    const [original, protectedImg] = item.querySelectorAll("img");
    original.src = originalUrl;
    original.alt = "original: " + file.name;
    protectedImg.src = protectedUrl;
    protectedImg.alt = "protected: " + file.name;
    protectedImg.dataset.name = name;
    const link = item.querySelector("a");
    link.href = protectedUrl;
    link.download = name;
    link.textContent = "Download " + name;
    residual(originalUrl, protectedUrl).then((canvas) => {
      const figure = document.createElement("figure");
      figure.appendChild(canvas);
      figure.insertAdjacentHTML("beforeend", "<figcaption>what changed (x30)</figcaption>");
      item.querySelector(".pair").appendChild(figure);
    }).catch(() => { /* a format the browser cannot draw: no residual */ });
    results.appendChild(item);
    done.push({ name, blob });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!picked.length) { say("Choose photos first.", true); return; }
    if (!document.getElementById("identity").value.trim()) { say("Enter your name first.", true); return; }
    document.getElementById("protect").disabled = true;
    let ok = 0;
    for (const file of picked) {
      say("Protecting " + file.name + " (" + (ok + 1) + " of " + picked.length + ")...");
      try {
        show(file, await protectOne(file));
        ok++;
      } catch (error) {
        say(error.message, true);
        break;
      }
    }
    document.getElementById("protect").disabled = false;
    downloadAll.disabled = done.length === 0;
    if (ok === picked.length) say("Done: " + ok + " photo(s) protected.");
  });

  // A store-only ZIP of the protected photos, made here (PNGs are compressed already).
  const table = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }
  async function zip(entries) {
    const parts = [], central = [];
    let offset = 0;
    for (const { name, blob } of entries) {
      const data = new Uint8Array(await blob.arrayBuffer());
      const nameBytes = new TextEncoder().encode(name);
      const crc = crc32(data);
      const local = new DataView(new ArrayBuffer(30));
      [[0, 0x04034b50, 4], [4, 20, 2], [8, 0, 2], [14, crc, 4], [18, data.length, 4], [22, data.length, 4], [26, nameBytes.length, 2]]
        .forEach(([at, value, size]) => size === 4 ? local.setUint32(at, value, true) : local.setUint16(at, value, true));
      const entry = new DataView(new ArrayBuffer(46));
      [[0, 0x02014b50, 4], [4, 20, 2], [6, 20, 2], [16, crc, 4], [20, data.length, 4], [24, data.length, 4], [28, nameBytes.length, 2], [42, offset, 4]]
        .forEach(([at, value, size]) => size === 4 ? entry.setUint32(at, value, true) : entry.setUint16(at, value, true));
      parts.push(local, nameBytes, data);
      central.push(entry, nameBytes);
      offset += 30 + nameBytes.length + data.length;
    }
    const size = central.reduce((n, p) => n + p.byteLength, 0);
    const end = new DataView(new ArrayBuffer(22));
    [[0, 0x06054b50, 4], [8, entries.length, 2], [10, entries.length, 2], [12, size, 4], [16, offset, 4]]
      .forEach(([at, value, width]) => width === 4 ? end.setUint32(at, value, true) : end.setUint16(at, value, true));
    return new Blob([...parts, ...central, end], { type: "application/zip" });
  }
  downloadAll.addEventListener("click", async () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await zip(done));
    link.download = "protected.zip";
    link.click();
  });
})();
