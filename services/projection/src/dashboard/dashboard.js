// Fills the dashboard from /dashboard/data: one table row and one panel of charts per
// platform in the signed-in caller's remit. No inline script: the page's policy forbids it.
"use strict";

const percent = (share) => (share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`);
const duration = (seconds) => {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
};
const month = (iso) => iso.slice(0, 7);

function cell(text, figure, numeric = true) {
  const td = document.createElement("td");
  td.textContent = text;
  if (figure) td.dataset.figure = figure;
  if (numeric) td.className = "n";
  return td;
}

function row(panel) {
  const tr = document.createElement("tr");
  const f = panel.figures;
  tr.dataset.platform = panel.platform.platform_id;
  tr.append(
    cell(`${panel.platform.name} (${panel.platform.country})`, null, false),
    cell(String(f.notices_sent), "notices_sent"),
    cell(percent(f.removed_within.own_deadline), "within_deadline"),
    cell(duration(f.median_seconds_to_removal), "median_to_removal"),
    cell(String(f.ignored), "ignored"),
    cell(percent(f.precision), "precision"),
  );
  return tr;
}

function chart(container, config) {
  const box = document.createElement("div");
  box.className = "chart";
  const canvas = document.createElement("canvas");
  box.append(canvas);
  container.append(box);
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
  return new Chart(canvas, config);
}

function panel(data) {
  const section = document.createElement("section");
  section.className = "platform";
  section.dataset.platform = data.platform.platform_id;
  const title = document.createElement("h2");
  title.textContent = data.platform.name;
  const charts = document.createElement("div");
  charts.className = "charts";
  section.append(title, charts);
  document.getElementById("panels").append(section);
  chart(charts, {
    type: "bar",
    data: {
      labels: data.removal_times.map((bucket) => bucket.label),
      datasets: [{ label: "Notices by time to removal", data: data.removal_times.map((b) => b.notices), backgroundColor: "#3b82f6" }],
    },
  });
  const months = data.months.map((m) => month(m.month));
  chart(charts, {
    type: "line",
    data: {
      labels: months,
      datasets: [
        { label: "Removed within deadline", data: data.months.map((m) => (m.within_deadline === null ? null : m.within_deadline * 100)), borderColor: "#16a34a" },
        { label: "Precision", data: data.months.map((m) => (m.precision === null ? null : m.precision * 100)), borderColor: "#9333ea" },
      ],
    },
    options: { scales: { y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } } } },
  });
  chart(charts, {
    type: "bar",
    data: { labels: months, datasets: [{ label: "Ignored notices", data: data.months.map((m) => m.ignored), backgroundColor: "#dc2626" }] },
  });
}

fetch("/dashboard/data", { credentials: "same-origin" })
  .then((response) => {
    if (response.status === 401) {
      window.location.assign("/dashboard");
      throw new Error("signed out");
    }
    return response.json();
  })
  .then((data) => {
    document.getElementById("who").textContent = `— ${data.signed_in_as}`;
    const body = document.querySelector("#platforms tbody");
    for (const platform of data.platforms) {
      body.append(row(platform));
      panel(platform);
    }
    document.body.dataset.loaded = "true";
  });
