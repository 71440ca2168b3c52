// console/lib/charts.js: live line charts over the API's history samples, drawn by Chart.js
// (Debian's libjs-chart.js 3.9, served by the broker as /vendor/chart.min.js: the global
// `Chart`). The API gives running totals for counters and plain values for depths, newest
// first; rates are the differences between neighbouring samples, as RabbitMQ's console
// computes them.

import {clock, num, rate} from './dom.js';

// Distinct on white and readable for the colour-blind (Okabe and Ito's palette).
const COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000'];

// Oldest-first [{x: timestamp, y: value}] of a gauge's details ({samples: [{sample, timestamp}]}).
export function gaugePoints(details) {
  const samples = (details && details.samples) || [];
  return samples.slice().reverse().map((s) => ({x: s.timestamp, y: s.sample}));
}

// Oldest-first per-second rates of a counter's details. A counter the API does not show yet
// (an idle object's message_stats is {}) reads as 0 at the timestamps of `zeroAt` points.
export function ratePoints(details, zeroAt = []) {
  const samples = ((details && details.samples) || []).slice().reverse();
  if (samples.length < 2) return zeroAt.map((p) => ({x: p.x, y: 0}));
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].timestamp - samples[i - 1].timestamp) / 1000;
    if (seconds <= 0) continue;
    points.push({x: samples[i].timestamp, y: Math.max(0, (samples[i].sample - samples[i - 1].sample) / seconds)});
  }
  return points;
}

// A line chart on canvas with one line per series ([{label}]); kind 'rate' or 'count' picks
// the number format. Returns {update(pointsPerSeries), destroy(), chart}.
export function lineChart(canvas, series, kind = 'count') {
  const format = kind === 'rate' ? rate : num;
  const chart = new window.Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s, i) => ({
        label: s.label,
        data: [],
        borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
        borderWidth: 2,
        // No dots on a line, but a lone sample (a new queue's first rate) must still show.
        pointRadius: (c) => (c.dataset.data.length < 3 ? 3 : 0),
        pointHitRadius: 6,
        tension: 0.25,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      interaction: {mode: 'index', intersect: false},
      scales: {
        x: {type: 'linear', ticks: {callback: (v) => clock(v), maxTicksLimit: 5, maxRotation: 0}},
        y: {beginAtZero: true, suggestedMax: 1, ticks: {callback: (v) => format(v), maxTicksLimit: 5,
          precision: kind === 'rate' ? undefined : 0}},
      },
      plugins: {
        legend: {position: 'bottom', labels: {boxWidth: 10, boxHeight: 10}},
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? clock(items[0].parsed.x) : ''),
            label: (item) => `${series[item.datasetIndex].label}: ${format(item.parsed.y)}`,
          },
        },
      },
    },
  });
  let destroyed = false;
  return {
    chart,
    // pointsPerSeries[i]: oldest-first {x, y} for series i. The legend shows the latest value.
    // The time axis spans exactly the samples. A chart destroyed meanwhile (the user moved on
    // while its data was on the way) ignores the update.
    update(pointsPerSeries) {
      if (destroyed) return;
      const xs = pointsPerSeries.flat().map((p) => p.x);
      const last = xs.length ? Math.max(...xs) : undefined;
      // One sample alone still needs an axis of some width to be drawn on.
      chart.options.scales.x.min = xs.length ? Math.min(Math.min(...xs), last - 5000) : undefined;
      chart.options.scales.x.max = last;
      pointsPerSeries.forEach((points, i) => {
        const dataset = chart.data.datasets[i];
        dataset.data = points;
        const last = points.length ? points[points.length - 1].y : undefined;
        dataset.label = `${series[i].label} ${last === undefined ? '' : format(last)}`.trim();
      });
      chart.update('none');
    },
    destroy() {
      destroyed = true;
      chart.destroy();
    },
  };
}
