// genprior's page: fill the menus from /api/models, send the image and options to /api/jobs, poll the job,
// show its progress and then its pictures with download links. No other host is ever contacted.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 400;
let currentJob = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text === undefined ? value : text;
  return o;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch (e) {
    return {error: `the server answered ${response.status} ${response.statusText}`};
  }
}

async function loadMenus() {
  const response = await fetch("/api/models");
  const info = await readJson(response);
  if (!response.ok) {
    showError(info.error || "cannot read the list of models");
    return;
  }
  const model = $("model");
  for (const g of info.generators) {
    model.append(option(g.name, g.local ? g.name : `${g.name} (not on this computer yet: may need a download)`));
  }
  model.value = info.default;
  model.dataset.descriptions = JSON.stringify(Object.fromEntries(info.generators.map((g) => [g.name, g.description])));
  for (const m of info.masks) $("masks").append(option(m));
  for (const k of info.kernels) $("kernel").append(option(k));
  for (const e of info.extensions) $("extension").append(option(e));
  for (const c of info.consistencies) $("consistency").append(option(c));
  describeModel();
}

function describeModel() {
  const descriptions = JSON.parse($("model").dataset.descriptions || "{}");
  $("model-note").textContent = descriptions[$("model").value] || "";
}

function showRelevantOptions() {
  const task = $("task").value;
  const method = $("method").value;
  for (const el of document.querySelectorAll("[data-for-task]")) {
    el.hidden = !el.dataset.forTask.split(" ").includes(task);
  }
  for (const el of document.querySelectorAll("[data-for-method]")) {
    el.hidden = !el.dataset.forMethod.split(" ").includes(method);
  }
}

function formQuery(file) {
  const q = new URLSearchParams();
  q.set("filename", file.name);
  q.set("model", $("model").value);
  q.set("task", $("task").value);
  q.set("method", $("method").value);
  for (const id of ["factor", "kernel", "mask", "sigma", "samples", "steps", "seed", "extension", "consistency"]) {
    const el = $(id);
    if (!el.closest("[hidden]") && el.value.trim() !== "") q.set(id, el.value.trim());
  }
  q.set("simulate", $("simulate").checked ? "on" : "off");
  return q;
}

function setRunning(running) {
  $("restore").disabled = running;
  $("cancel").hidden = !running;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const file = $("image").files[0];
  if (!file) {
    showError("choose an image file first");
    return;
  }
  $("results").hidden = true;
  setRunning(true);
  const query = formQuery(file);
  let response;
  try {
    const calibration = $("calibration").files[0];
    if (calibration && !$("calibration").closest("[hidden]")) {
      const sent = await fetch("/api/calibrations", {method: "POST", body: calibration});
      const reply = await readJson(sent);
      if (!sent.ok) {
        setRunning(false);
        showError(reply.error || `the server answered ${sent.status}`);
        return;
      }
      query.set("calibration", reply.id);
    }
    response = await fetch(`/api/jobs?${query}`, {
      method: "POST", body: file, headers: {"Content-Type": file.type || "application/octet-stream"},
    });
  } catch (e) {
    setRunning(false);
    showError(`cannot reach the genprior server (${e.message}); is \`genprior serve\` still running?`);
    return;
  }
  const job = await readJson(response);
  if (!response.ok) {
    setRunning(false);
    showError(job.error || `the server answered ${response.status}`);
    return;
  }
  currentJob = job.id;
  $("progress-box").hidden = false;
  poll(job.id);
}

function describeProgress(job) {
  if (job.state === "queued" || job.state === "loading") return `loading ${job.model}…`;
  if (job.state === "saving") return "writing the result and its report…";
  if (job.state === "running" && job.step === 0) return "preparing the first step…";
  if (job.state === "running") {
    const stage = job.stage ? `${job.stage} ` : "";
    return `${stage}step ${job.step} of ${job.total} (${Math.round(100 * job.fraction)} %, ${job.seconds} s)`;
  }
  if (job.state === "done") return `done in ${job.seconds} s`;
  return job.state;
}

async function poll(id) {
  let job;
  try {
    const response = await fetch(`/api/jobs/${id}`);
    job = await readJson(response);
    if (!response.ok) throw new Error(job.error || `status ${response.status}`);
  } catch (e) {
    setRunning(false);
    showError(`lost the job: ${e.message}`);
    return;
  }
  $("progress").value = job.fraction;
  $("status").textContent = describeProgress(job);
  if (["queued", "loading", "running", "saving"].includes(job.state)) {
    setTimeout(() => poll(id), POLL_MS);
    return;
  }
  setRunning(false);
  currentJob = null;
  if (job.state === "done") showResult(job);
  else showError(job.error || job.state);
}

function fileUrl(job, name, download) {
  return `/api/jobs/${job.id}/files/${encodeURIComponent(name)}${download ? "?download=1" : ""}`;
}

function link(href, text, download) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (download) a.setAttribute("download", download);
  return a;
}

function showResult(job) {
  const gallery = $("gallery");
  const downloads = $("downloads");
  gallery.replaceChildren();
  downloads.replaceChildren();
  const all = link(`/api/jobs/${job.id}/result.zip`, "Download everything (zip)", "");
  all.id = "download-all";
  downloads.append(all);
  for (const f of job.files) {
    const stem = f.name.replace(/\.[^.]+$/, "");
    if (f.kind === "data" || f.name === "index.html") {
      downloads.append(" · ");
      const a = f.name === "index.html" ? link(fileUrl(job, f.name, false), f.label) : link(fileUrl(job, f.name, true), f.label, f.name);
      if (f.name === "index.html") a.target = "_blank";
      a.id = `link-${stem}`;
      downloads.append(a);
      continue;
    }
    const figure = document.createElement("figure");
    figure.className = f.kind;
    const img = document.createElement("img");
    img.id = `result-${stem}`;
    img.src = fileUrl(job, f.name, false);
    img.alt = f.label;
    const caption = document.createElement("figcaption");
    const save = link(fileUrl(job, f.name, true), "download", f.name);
    save.id = `download-${stem}`;
    caption.append(`${f.label} `, save);
    figure.append(img, caption);
    gallery.append(figure);
  }
  showMetrics(job.metrics);
  const notes = $("notes");
  notes.replaceChildren(...job.notes.map((n) => {
    const li = document.createElement("li");
    li.textContent = n;
    return li;
  }));
  $("results").hidden = false;
}

function showMetrics(metrics) {
  const table = $("metrics");
  const rows = Object.entries(metrics || {});
  table.hidden = rows.length === 0;
  table.replaceChildren();
  if (!rows.length) return;
  const head = table.insertRow();
  for (const h of ["against the truth", "PSNR (dB)", "SSIM"]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  for (const [name, m] of rows) {
    const row = table.insertRow();
    row.insertCell().textContent = name.replace("_", " ");
    row.insertCell().textContent = m.psnr.toFixed(2);
    row.insertCell().textContent = m.ssim.toFixed(3);
  }
}

async function cancel() {
  if (currentJob) await fetch(`/api/jobs/${currentJob}/cancel`, {method: "POST"});
}

function preview() {
  const file = $("image").files[0];
  const img = $("preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.hidden = !file;
  img.onerror = () => { img.hidden = true; };
  if (file) img.src = URL.createObjectURL(file);
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  $("image").addEventListener("change", preview);
  $("model").addEventListener("change", describeModel);
  $("task").addEventListener("change", showRelevantOptions);
  $("method").addEventListener("change", showRelevantOptions);
  showRelevantOptions();
  loadMenus().catch((e) => showError(`cannot reach the genprior server (${e.message})`));
});
