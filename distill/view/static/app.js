/* distill view: the page (vanilla JS, no build step).

   Model-written text is untrusted. It enters the page only as text: text nodes and textContent, never
   innerHTML. LaTeX in it goes through KaTeX with trust: false (no \href, \url, \includegraphics, \html…),
   which builds DOM nodes itself; code goes through highlight.js, which escapes what it highlights. The
   server's Content-Security-Policy (or, in an export, the page's own) runs no script but these files.

   Served, it asks the server's JSON routes; exported (distill view --export), it answers the same
   questions from the data embedded in the page. */
"use strict";
(function () {
  const DATA_NODE = document.getElementById("distill-data");
  const STATIC = DATA_NODE ? JSON.parse(DATA_NODE.textContent) : null;
  const main = document.getElementById("main");
  const header = document.getElementById("top");
  const SVGNS = "http://www.w3.org/2000/svg";
  const KATEX_OPTIONS = {
    delimiters: [
      {left: "$$", right: "$$", display: true}, {left: "\\[", right: "\\]", display: true},
      {left: "\\(", right: "\\)", display: false}, {left: "$", right: "$", display: false},
    ],
    throwOnError: false, trust: false, strict: "ignore", maxExpand: 1000, maxSize: 20,
    ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code", "option"],
    errorCallback: function () {},
  };
  let sources = [];
  let renderToken = 0;
  let lastList = null;  // the record list last shown (its filters), for the record page's way back

  // ---------------------------------------------------------------- DOM, text only

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setAttributes(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.setAttribute("class", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    return node;
  }

  function h(tag, attrs, ...children) {
    return append(setAttributes(document.createElement(tag), attrs), children);
  }

  function svg(tag, attrs, ...children) {
    return append(setAttributes(document.createElementNS(SVGNS, tag), attrs), children);
  }

  function fmt(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") {
      return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toLocaleString("en-US", {maximumFractionDigits: 3});
    }
    return String(value);
  }

  function pct(part, whole) {
    return whole ? (100 * part / whole).toFixed(1) + "%" : "–";
  }

  function className(value) {
    return "c-" + String(value).toLowerCase().replace(/[^a-z0-9]+/g, "-");
  }

  // ---------------------------------------------------------------- routes: #/page?src=0&…

  function route() {
    const raw = location.hash.replace(/^#/, "") || "/overview";
    const at = raw.indexOf("?");
    return {path: at < 0 ? raw : raw.slice(0, at), params: new URLSearchParams(at < 0 ? "" : raw.slice(at + 1))};
  }

  function link(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === "") continue;
      for (const item of [].concat(value)) query.append(key, String(item));
    }
    const text = query.toString();
    return "#" + path + (text ? "?" + text : "");
  }

  function go(path, params) {
    location.hash = link(path, params);
  }

  // ---------------------------------------------------------------- data

  async function api(path, params) {
    if (STATIC) return staticApi(path, params || {});
    const url = new URL("api/" + path, document.baseURI);
    for (const [key, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === "") continue;
      for (const item of [].concat(value)) url.searchParams.append(key, String(item));
    }
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    const body = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body.error || "");
      throw new Error(response.status + " " + (detail || response.statusText));
    }
    return body;
  }

  function staticApi(path, params) {
    const src = Number(params.src || 0);
    if (path === "sources") return STATIC.sources;
    if (path === "overview") return STATIC.overviews[src];
    if (path === "records") return staticRecords(src, params);
    if (path === "record") {
      const found = STATIC.records[src + ":" + params.n];
      if (!found) throw new Error("Record " + params.n + " is not in this export (it holds a few records of each kind).");
      return found;
    }
    if (path === "prompt") {
      const found = STATIC.prompts[src + ":" + params.prompt_id];
      if (!found) throw new Error("The samples of this prompt are not in this export.");
      return found;
    }
    throw new Error("unknown request " + path);
  }

  function staticRecords(src, p) {
    let rows = (STATIC.rows[src] || []).slice();
    const same = function (key) {
      if (p[key]) rows = rows.filter(function (r) { return String(r[key]) === String(p[key]); });
    };
    if (p.status) rows = rows.filter(function (r) { return r.status === p.status || r.grade === p.status; });
    if (p.rejected_by) rows = rows.filter(function (r) { return r.rejected_by.indexOf(p.rejected_by) >= 0; });
    for (const item of [].concat(p.verdict || [])) {
      const at = item.indexOf(":");
      rows = rows.filter(function (r) { return (r.verdicts || {})[item.slice(0, at)] === item.slice(at + 1); });
    }
    if (p.min_tokens) rows = rows.filter(function (r) { return r.tokens !== null && r.tokens >= Number(p.min_tokens); });
    if (p.max_tokens) rows = rows.filter(function (r) { return r.tokens !== null && r.tokens <= Number(p.max_tokens); });
    ["language", "finish", "prompt_id", "model", "judge", "contamination", "pass_rate"].forEach(same);
    if (p.q) {
      const needle = String(p.q).toLowerCase();
      rows = rows.filter(function (r) {
        const found = STATIC.records[src + ":" + r.n];
        const rec = found ? found.record : {};
        const prompt = (rec.messages || []).map(function (m) { return m.content; }).join("\n");
        const parts = {prompt: prompt, reasoning: rec.reasoning || "", answer: rec.answer || ""};
        const text = p.q_in && p.q_in !== "all" ? parts[p.q_in] : [prompt, rec.reasoning || "", rec.answer || "", rec.reference || ""].join("\n");
        return text.toLowerCase().indexOf(needle) >= 0;
      });
    }
    if (p.sort === "tokens" || p.sort === "-tokens") {
      const sign = p.sort === "tokens" ? 1 : -1;
      rows.sort(function (a, b) { return ((a.tokens === null) - (b.tokens === null)) || sign * (a.tokens - b.tokens) || a.n - b.n; });
    }
    const perPage = Number(p.per_page || 50);
    const page = Math.max(1, Number(p.page || 1));
    return {src: src, total: rows.length, page: page, per_page: perPage, rows: rows.slice((page - 1) * perPage, page * perPage)};
  }

  // ---------------------------------------------------------------- rich text: LaTeX and code

  const FENCE = /```([A-Za-z0-9_+.#-]*)[^\n]*\n([\s\S]*?)```/g;

  function rich(text, className) {
    const box = h("div", {class: "rich" + (className ? " " + className : "")});
    let last = 0;
    for (const match of String(text).matchAll(FENCE)) {
      if (match.index > last) box.appendChild(textBlock(text.slice(last, match.index)));
      box.appendChild(codeBlock(match[2], match[1]));
      last = match.index + match[0].length;
    }
    if (last < text.length || !text.length) box.appendChild(textBlock(text.slice(last)));
    return box;
  }

  function textBlock(text) {
    const div = h("div", {class: "text"}, text);
    if (window.renderMathInElement) {
      try { window.renderMathInElement(div, KATEX_OPTIONS); } catch (error) { div.textContent = text; }
    }
    return div;
  }

  function codeBlock(code, language) {
    const element = h("code", {}, code);
    if (window.hljs && code.length < 100000) {
      const known = language && window.hljs.getLanguage(language);
      element.className = known ? "language-" + language : code.length < 20000 ? "" : "language-plaintext";
      window.hljs.highlightElement(element);  // reads the text, writes it back escaped inside <span class=…>
    }
    return h("pre", {}, element);
  }

  function math(text) {
    // an extracted answer or a reference: typeset when KaTeX reads it, else shown as it is
    const span = h("span", {class: "math"});
    if (text === null || text === undefined) return append(span, [h("span", {class: "muted"}, "none")]);
    if (window.katex && /[\\^_{}]/.test(text) && text.length < 2000) {
      try {
        window.katex.render(text, span, {throwOnError: true, trust: false, strict: "ignore", maxExpand: 1000, maxSize: 20});
        span.setAttribute("title", text);
        return span;
      } catch (error) { span.textContent = ""; }
    }
    span.textContent = text;
    return span;
  }

  // ---------------------------------------------------------------- charts (SVG, every bar a link)

  function barChart(items, options) {
    options = options || {};
    const width = options.width || 460;
    const row = 22;
    const longest = Math.max(4, ...items.map(function (i) { return String(i.label).length; }));
    const labelWidth = Math.min(190, 12 + 7 * longest);
    const valueWidth = 70;
    const max = Math.max(1e-9, ...items.map(function (i) { return i.value; }));
    const height = items.length * row + 4;
    const chart = svg("svg", {class: "chart bars", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img"});
    items.forEach(function (item, i) {
      const y = i * row + 2;
      const w = item.value > 0 ? Math.max(2, (width - labelWidth - valueWidth) * item.value / max) : 0;
      const label = String(item.label).length > 28 ? String(item.label).slice(0, 27) + "…" : String(item.label);
      const group = svg(item.href ? "a" : "g", {class: "bar", "data-label": item.label, href: item.href || null},
        svg("title", {}, item.title || item.label + ": " + (options.format || fmt)(item.value)),
        svg("text", {x: labelWidth - 6, y: y + 15, "text-anchor": "end"}, label),
        svg("rect", {x: labelWidth, y: y + 3, width: w, height: row - 6, rx: 2, class: item.cls || "c-bar"}),
        svg("text", {x: labelWidth + w + 5, y: y + 15}, (options.format || fmt)(item.value)));
      chart.appendChild(group);
    });
    return chart;
  }

  function histogram(bins, options) {
    const width = 460, height = 200, left = 46, right = 12, top = 14, bottom = 34;
    const classes = options.classes;
    const totals = bins.map(function (b) { return Object.values(b.counts).reduce(function (a, c) { return a + c; }, 0); });
    const max = Math.max(1, ...totals);
    const low = bins.length ? bins[0].lo : 0;
    const high = bins.length ? bins[bins.length - 1].hi : 1;
    const x = function (v) { return left + (v - low) / ((high - low) || 1) * (width - left - right); };
    const y = function (v) { return top + (height - top - bottom) * (1 - v / max); };
    const chart = svg("svg", {class: "chart histogram", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img"});
    chart.appendChild(svg("line", {class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0)}));
    chart.appendChild(svg("text", {x: left - 4, y: top + 8, "text-anchor": "end"}, fmt(max)));
    chart.appendChild(svg("text", {x: left - 4, y: y(0), "text-anchor": "end"}, "0"));
    [low, (low + high) / 2, high].forEach(function (v, i) {
      chart.appendChild(svg("text", {x: x(v), y: height - bottom + 16, "text-anchor": ["start", "middle", "end"][i]}, options.tick ? options.tick(v) : fmt(Math.round(v))));
    });
    chart.appendChild(svg("text", {x: (left + width - right) / 2, y: height - 4, "text-anchor": "middle"}, options.xlabel || ""));
    bins.forEach(function (bin, i) {
      if (!totals[i]) return;
      const group = svg(options.href ? "a" : "g", {class: "bin", href: options.href ? options.href(bin) : null, "data-lo": bin.lo, "data-hi": bin.hi});
      group.appendChild(svg("title", {}, (options.tick ? options.tick(bin.lo) + "–" + options.tick(bin.hi) : fmt(bin.lo) + "–" + fmt(bin.hi)) + ": " +
        classes.filter(function (c) { return bin.counts[c]; }).map(function (c) { return c + " " + fmt(bin.counts[c]); }).join(", ")));
      let stacked = 0;
      for (const cls of classes) {
        const count = bin.counts[cls] || 0;
        if (!count) continue;
        group.appendChild(svg("rect", {x: x(bin.lo) + 0.5, width: Math.max(1, x(bin.hi) - x(bin.lo) - 1), y: y(stacked + count), height: y(stacked) - y(stacked + count), class: className(cls)}));
        stacked += count;
      }
      chart.appendChild(group);
    });
    if (options.line !== null && options.line !== undefined && options.line >= low && options.line <= high) {
      chart.appendChild(svg("line", {class: "limit", x1: x(options.line), x2: x(options.line), y1: top - 4, y2: y(0)}));
      const right = x(options.line) > width * 0.7;
      chart.appendChild(svg("text", {x: x(options.line) + (right ? -4 : 4), y: top + 6, "text-anchor": right ? "end" : "start"}, options.lineLabel || ""));
    }
    return chart;
  }

  function legend(classes) {
    return h("div", {class: "legend"}, classes.map(function (c) { return h("span", {class: className(c)}, c); }));
  }

  function panel(title, note, ...content) {
    return h("div", {class: "panel"}, h("h2", {}, title), note ? h("div", {class: "muted"}, note) : null, content);
  }

  // ---------------------------------------------------------------- header

  function renderHeader(current, src) {
    const picker = sources.length > 1
      ? h("select", {"aria-label": "source", id: "source", onchange: function (e) { go("/overview", {src: e.target.value}); }},
          sources.map(function (s) { return h("option", {value: s.src, selected: s.src === src}, s.name + " (" + s.kind + ", " + fmt(s.records) + ")"); }))
      : h("span", {class: "note"}, sources[0] ? sources[0].name : "");
    header.replaceChildren(append(document.createDocumentFragment(), [
      h("span", {class: "brand"}, "distill view"), picker,
      h("a", {href: link("/overview", {src: src}), class: current === "overview" ? "active" : null, id: "nav-overview"}, "Overview"),
      h("a", {href: link("/records", {src: src}), class: current === "records" ? "active" : null, id: "nav-records"}, "Records"),
      h("span", {class: "spacer"}),
      STATIC ? h("span", {class: "note"}, "static export, " + STATIC.generated) : null]));
  }

  function staticBanner(src) {
    const shown = (STATIC.rows[src] || []).length;
    const total = STATIC.sources[src] ? STATIC.sources[src].records : 0;
    return h("div", {class: "banner"}, "This export holds " + fmt(shown) + " of " + fmt(total) + " records (" + STATIC.per_kind +
      " of each reject reason, of the kept records, per model). Charts and counts cover all " + fmt(total) + "; lists show only the records held here.");
  }

  // ---------------------------------------------------------------- overview

  async function overviewPage(src) {
    const o = await api("overview", {src: src});
    const out = [h("h1", {}, o.name + " ", h("span", {class: "badge"}, o.kind))];
    if (STATIC) out.push(staticBanner(src));
    out.push(tiles(o));
    const grid = h("div", {class: "grid", id: "charts"});
    const records = function (params) { return link("/records", Object.assign({src: src}, params)); };
    const report = o.report || {};
    if (o.kind === "filter") {
      const items = [{label: "kept", value: o.status.kept || 0, href: records({status: "kept"}), cls: "c-kept"}];
      for (const check of o.checks) {
        if (check.rejected) items.push({label: check.check, value: check.rejected, href: records({status: "rejected", rejected_by: check.check}), cls: "c-rejected",
          title: check.check + ": rejected " + fmt(check.rejected) + " (the only reason for " + fmt(check.sole_reason) + ")"});
      }
      grid.appendChild(panel("Kept, and rejected by reason", "A record may be rejected by several checks; click a bar for its records.", barChart(items)));
    }
    if (o.kind === "eval") {
      const models = (report.eval && report.eval.models) || [];
      const items = models.length
        ? models.map(function (m) { return {label: m.model, value: m.pass_at_1 || 0, href: records({model: m.model}), title: m.model + ": pass@1 " + fmt(m.pass_at_1)}; })
        : (o.models || []).map(function (m) { return {label: m.model, value: m.samples ? m.right / m.samples : 0, href: records({model: m.model})}; });
      grid.appendChild(panel("pass@1 by model", report.eval ? report.eval.benchmark + ", n = " + report.eval.n : null,
        barChart(items, {format: function (v) { return v.toFixed(3); }})));
      const grades = [];
      for (const m of o.models || []) {
        for (const grade of ["right", "wrong", "ungraded"]) {
          if (m[grade]) grades.push({label: m.model + ": " + grade, value: m[grade], href: records({model: m.model, status: grade}), cls: className(grade)});
        }
      }
      grid.appendChild(panel("Samples by grade", null, barChart(grades)));
    }
    if (o.tokens && o.tokens.bins && o.tokens.bins.length) {
      const classes = o.kind === "filter" ? ["kept", "rejected", "unfiltered"] : o.kind === "eval" ? ["right", "wrong", "ungraded", "not graded"] : ["stop", "length", "?"];
      const present = classes.filter(function (c) { return o.tokens.bins.some(function (b) { return b.counts[c]; }); });
      grid.appendChild(panel("Completion length", (o.tokens.unknown ? fmt(o.tokens.unknown) + " records without a length. " : "") + "Click a bin for its records.",
        legend(present),
        histogram(o.tokens.bins, {classes: present, xlabel: "tokens", line: o.tokens.limit, lineLabel: o.tokens.limit ? o.tokens.limit_by + " --max-tokens " + fmt(o.tokens.limit) : "",
          href: function (bin) { return records({min_tokens: Math.ceil(bin.lo), max_tokens: Math.ceil(bin.hi) - 1}); }})));
    }
    for (const rates of o.pass_rate || []) {
      const what = o.kind === "eval" ? "right" : "kept";
      grid.appendChild(panel("Per-prompt pass rate" + (rates.model ? ": " + rates.model : ""),
        fmt(rates.with_passed) + " of " + fmt(rates.prompts) + " prompts have a " + what + " sample. Share of each prompt's samples " + what + ".",
        barChart(rates.buckets.map(function (b) { return {label: b.bucket, value: b.prompts, href: records({pass_rate: b.bucket, model: rates.model || null}), title: b.bucket + ": " + fmt(b.prompts) + " prompts"}; }),
          {format: function (v) { return fmt(v) + " pr."; }})));
    }
    const simple = [["languages", "Language (of the prompt: the target)", "language"], ["judge", "Judge", "judge"],
      ["contamination", "Decontamination hits by benchmark", "contamination"], ["finish", "Finish reason", "finish"]];
    for (const [key, title, param] of simple) {
      if (!o[key] || !o[key].length) continue;
      const note = key === "judge" ? "What the judge did with the answers the rules left open or called wrong." : null;
      grid.appendChild(panel(title, note, barChart(o[key].map(function (row) {
        const params = {}; params[param] = row.value;
        return {label: row.value, value: row.records, href: records(params), cls: key === "finish" ? className(row.value) : null};
      }))));
    }
    if (o.language_score) {
      const threshold = report.filter && report.filter.language ? report.filter.language.threshold : null;
      grid.appendChild(panel("Language consistency", "Share of each trace's words in the target language.",
        histogram(o.language_score.bins, {classes: ["records"], xlabel: "score", line: threshold, lineLabel: threshold !== null ? "threshold " + threshold : "",
          tick: function (v) { return v.toFixed(2); }})));
    }
    out.push(grid);
    out.push(reportTables(o, src));
    return out;
  }

  function tiles(o) {
    const tile = function (n, label) { return h("div", {class: "tile"}, h("div", {class: "n"}, n), h("div", {class: "l"}, label)); };
    const list = [tile(fmt(o.records), "records")];
    if (o.kind === "filter") {
      list.push(tile(fmt(o.status.kept || 0), "kept (" + pct(o.status.kept || 0, o.records) + ")"));
      list.push(tile(fmt(o.status.rejected || 0), "rejected"));
    }
    const rates = (o.pass_rate || [])[0];
    if (rates && o.kind === "filter") list.push(tile(fmt(rates.with_passed) + " / " + fmt(rates.prompts), "prompts with a kept sample"));
    const generate = (o.report || {}).generate;
    if (generate) {
      list.push(tile(fmt(generate.prompts), "prompts"));
      if (generate.tokens_per_s) list.push(tile(fmt(Math.round(generate.tokens_per_s)), "tokens/s (" + generate.backend + ")"));
    }
    for (const segment of o.segments || []) {
      if (o.kind === "eval") list.push(tile(fmt(segment.records), segment.role + " samples"));
    }
    return h("div", {class: "tiles"}, list);
  }

  function reportTables(o, src) {
    const report = o.report || {};
    const out = [];
    if (o.checks && o.checks.length) {
      out.push(h("h2", {}, "Checks"));
      const head = ["check", "pass", "fail", "null", "not run", "rejected", "only reason"];
      out.push(h("table", {class: "checks-summary"},
        h("tr", {}, head.map(function (c, i) { return h("th", {class: i ? "num" : null}, c); })),
        o.checks.map(function (c) {
          return h("tr", {},
            h("td", {}, h("a", {href: link("/records", {src: src, status: "rejected", rejected_by: c.check})}, c.check)),
            [c.pass, c.fail, c.null, c.not_run, c.rejected, c.sole_reason].map(function (v, i) {
              const value = ["true", "false", "null", "not_run"][i];
              return h("td", {class: "num"}, value && v ? h("a", {href: link("/records", {src: src, verdict: c.check + ":" + value})}, fmt(v)) : fmt(v));
            }));
        })));
    }
    const filter = report.filter;
    if (filter) {
      const lengths = filter.lengths || {};
      const all = lengths.all || {};
      const kv = [["records", filter.records ? fmt(filter.records.input) + " in = " + fmt(filter.records.kept) + " kept + " + fmt(filter.records.rejected) + " rejected" : null],
        ["lengths", all.count ? "p50 " + fmt(all.p50) + ", p90 " + fmt(all.p90) + ", p99 " + fmt(all.p99) + ", max " + fmt(all.max) + " (" + lengths.source + ")" : null],
        ["settings", filter.config ? JSON.stringify(filter.config) : null],
        ["throughput", filter.throughput ? fmt(filter.throughput.records_per_s) + " records/s, " + filter.throughput.workers + " workers" : null],
        ["judge", filter.judge ? JSON.stringify(filter.judge) : null]];
      for (const note of filter.notes || []) kv.push(["note", note]);
      out.push(h("h2", {}, "Filter report"), keyValues(kv));
    }
    const generate = report.generate;
    if (generate) {
      out.push(h("h2", {}, "Generate summary"), keyValues([["teacher", generate.teacher], ["backend", generate.backend],
        ["records", fmt(generate.records) + " for " + fmt(generate.prompts) + " prompts"],
        ["finish reasons", JSON.stringify(generate.finish_reasons)], ["completion tokens", JSON.stringify(generate.completion_tokens)],
        ["params", JSON.stringify(generate.params)], ["failed prompts", fmt(generate.failed_prompts)]]));
    }
    const evaluation = report.eval;
    if (evaluation) {
      out.push(h("h2", {}, "Eval results: " + evaluation.benchmark));
      const ks = evaluation.models.length ? Object.keys(evaluation.models[0].pass_at_k || {}) : [];
      const head = ["model", "pass@1"].concat(ks.map(function (k) { return "pass@" + k; }), ["cons@" + evaluation.n, "tokens", "truncated", "mixed language", "ungraded"]);
      out.push(h("table", {class: "eval-table"}, h("tr", {}, head.map(function (c, i) { return h("th", {class: i ? "num" : null}, c); })),
        evaluation.models.map(function (m) {
          return h("tr", {}, h("td", {}, h("a", {href: link("/records", {src: src, model: m.model})}, m.model)),
            [m.pass_at_1].concat(ks.map(function (k) { return m.pass_at_k[k]; }), [m.cons_at_n, m.mean_completion_tokens, m.truncated, m.mixed_language, m.ungraded])
              .map(function (v) { return h("td", {class: "num"}, typeof v === "number" ? v.toFixed(3) : fmt(v)); }));
        })));
    }
    return out;
  }

  function keyValues(pairs) {
    return h("div", {class: "kv section"}, pairs.filter(function (p) { return p[1] !== null && p[1] !== undefined; })
      .map(function (p) { return [h("div", {class: "k"}, p[0]), h("div", {class: "v"}, String(p[1]))]; }));
  }

  // ---------------------------------------------------------------- the record list

  const LIST_KEYS = ["status", "rejected_by", "min_tokens", "max_tokens", "language", "finish", "prompt_id", "model",
    "judge", "contamination", "pass_rate", "q", "q_in", "sort", "page", "per_page"];

  async function recordsPage(src, params) {
    const source = sources[src] || {checks: [], kind: "traces", languages: [], finish: [], judge: [], contamination: [], models: []};
    const query = {src: src, verdict: params.getAll("verdict")};
    for (const key of LIST_KEYS) query[key] = params.get(key);
    const data = await api("records", query);
    lastList = {src: src, hash: location.hash};
    const out = [];
    if (STATIC) out.push(staticBanner(src));
    out.push(filterForm(source, params), pager(data, params), recordsTable(data, source), pager(data, params));
    return out;
  }

  function filterForm(source, params) {
    const fields = {};
    const apply = function () {
      const next = {src: source.src};
      for (const [name, field] of Object.entries(fields)) if (field.value) next[name] = field.value;
      const check = next.verdict_check, value = next.verdict_value;
      delete next.verdict_check; delete next.verdict_value;
      if (check && value) next.verdict = [check + ":" + value].concat(params.getAll("verdict").slice(1));
      go("/records", next);
    };
    const select = function (name, label, options, value, blank) {
      const current = value !== undefined && value !== null ? value : params.get(name);
      const field = h("select", {name: name, onchange: apply}, h("option", {value: ""}, blank || "any"),
        options.map(function (o) { const [v, text] = [].concat(o, o).slice(0, 2); return h("option", {value: v, selected: current === String(v)}, text); }));
      fields[name] = field;
      return h("label", {}, label, field);
    };
    const input = function (name, label, type, attrs) {
      const field = h("input", Object.assign({name: name, type: type, value: params.get(name) || ""}, attrs || {}));
      fields[name] = field;
      return h("label", {}, label, field);
    };
    const verdict = (params.getAll("verdict")[0] || ":").split(":");
    const status = source.kind === "eval" ? ["right", "wrong", "ungraded"] : source.kind === "filter" ? ["kept", "rejected"] : [];
    const controls = [];
    if (status.length) controls.push(select("status", source.kind === "eval" ? "grade" : "kept / rejected", status));
    if (source.models.length) controls.push(select("model", "model", source.models));
    if (source.checks.length) {
      controls.push(select("rejected_by", "rejected by", source.checks));
      controls.push(select("verdict_check", "verdict of", source.checks, verdict[0]));
      controls.push(select("verdict_value", "is", [["true", "pass"], ["false", "fail"], ["null", "null"], ["not_run", "not run"]], verdict[1]));
    }
    controls.push(input("min_tokens", "tokens ≥", "number", {min: 0}), input("max_tokens", "tokens ≤", "number", {min: 0}));
    if (source.languages.length) controls.push(select("language", "language", source.languages));
    if (source.finish.length) controls.push(select("finish", "finish", source.finish));
    if (source.judge.length) controls.push(select("judge", "judge", source.judge));
    if (source.contamination.length) controls.push(select("contamination", "contaminated by", source.contamination));
    if (source.kind !== "traces") controls.push(select("pass_rate", "prompt pass rate", ["0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1"]));
    controls.push(input("prompt_id", "prompt id", "text", {size: 12}));
    controls.push(input("q", "text", "search", {placeholder: "search prompt, reasoning, answer"}));
    controls.push(select("q_in", "in", [["prompt", "prompt"], ["reasoning", "reasoning"], ["answer", "answer"]], null, "all"));
    controls.push(select("sort", "order", [["tokens", "shortest first"], ["-tokens", "longest first"]], null, "file order"));
    controls.push(h("button", {type: "submit"}, "Apply"), h("a", {class: "button", href: link("/records", {src: source.src})}, "Clear"));
    return h("form", {class: "filters", id: "filters", onsubmit: function (e) { e.preventDefault(); apply(); }}, controls);
  }

  function pager(data, params) {
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    const to = function (page) {
      const next = {};
      for (const [key, value] of params.entries()) if (key !== "page" && key !== "verdict") next[key] = value;
      next.verdict = params.getAll("verdict");
      next.page = page;
      return link("/records", next);
    };
    return h("div", {class: "pager"},
      h("strong", {class: "total"}, fmt(data.total) + " records"),
      data.page > 1 ? h("a", {class: "button", href: to(data.page - 1)}, "← previous") : null,
      h("span", {class: "muted"}, "page " + fmt(data.page) + " of " + fmt(pages)),
      data.page < pages ? h("a", {class: "button next", href: to(data.page + 1)}, "next →") : null);
  }

  function statusBadges(row) {
    const value = row.grade || row.status;
    return [h("span", {class: "badge " + value}, value)].concat(row.rejected_by.map(function (c) { return h("span", {class: "chip"}, c); }));
  }

  function recordsTable(data, source) {
    if (!data.rows.length) return h("p", {class: "muted", id: "no-records"}, "No records match.");
    const eval_ = source.kind === "eval";
    const head = h("tr", {}, ["#", "id", eval_ ? "model" : "file", "status", "tokens", "lang", "finish", "answer", "reference", "prompt"]
      .map(function (c) { return h("th", {class: c === "#" || c === "tokens" ? "num" : null}, c); }));
    return h("table", {id: "records"}, head, data.rows.map(function (row) {
      const open = function () { go("/record", {src: data.src, n: row.n}); };
      return h("tr", {class: "rowlink", "data-n": row.n, "data-id": row.id, onclick: open},
        h("td", {class: "num muted"}, row.n),
        h("td", {class: "mono"}, h("a", {href: link("/record", {src: data.src, n: row.n})}, row.id)),
        h("td", {class: "muted"}, eval_ ? row.model : row.file),
        h("td", {}, statusBadges(row)),
        h("td", {class: "num"}, fmt(row.tokens)),
        h("td", {}, row.language || ""),
        h("td", {}, row.finish || "", row.cut ? " (cut)" : ""),
        h("td", {class: "clip mono", title: row.answer || ""}, row.answer === null ? h("span", {class: "muted"}, "none") : row.answer),
        h("td", {class: "clip mono", title: row.reference || ""}, row.reference === null ? h("span", {class: "muted"}, "none") : row.reference),
        h("td", {class: "clip", title: row.prompt || ""}, row.prompt));
    }));
  }

  // ---------------------------------------------------------------- one record

  function messagesBlock(messages) {
    return messages.map(function (m) { return h("div", {class: "message"}, h("div", {class: "role"}, m.role), rich(m.content)); });
  }

  function referenceBlock(data) {
    if (data.reference === null || data.reference === undefined) return h("span", {class: "muted"}, "none");
    if (data.reference_is_code) return codeBlock(data.reference, "json");
    return math(data.reference);
  }

  function reasoningBlock(src, n, record, text) {
    if (!record.has_reasoning) return h("p", {class: "muted"}, "No reasoning block in this completion.");
    const body = h("div", {class: "reasoning-body"});
    const summary = h("summary", {}, "Reasoning: " + fmt(record.reasoning_chars) + " characters",
      record.cut ? " (cut off: the think block was never closed)" : "", " — click to expand");
    const details = h("details", {class: "reasoning"}, summary, body);
    let filled = false;
    details.addEventListener("toggle", async function () {
      if (!details.open || filled) return;
      filled = true;
      let reasoning = text;
      if (reasoning === undefined) {
        body.appendChild(h("p", {class: "loading"}, "Loading…"));
        try {
          reasoning = (await api("record", {src: src, n: n})).record.reasoning;
        } catch (error) {
          body.replaceChildren(h("p", {class: "error"}, String(error.message || error)));
          return;
        }
        body.replaceChildren();
      }
      body.appendChild(rich(reasoning || ""));
      details.setAttribute("data-rendered", "");
    });
    return details;
  }

  function checksTable(checks) {
    if (!checks.length) return h("p", {class: "muted"}, "No filter verdicts (not filtered).");
    const describe = function (value) { return typeof value === "string" ? value : JSON.stringify(value); };
    return h("table", {class: "checks"}, h("tr", {}, h("th", {}, "check"), h("th", {}, "verdict"), h("th", {}, "details")),
      checks.map(function (c) {
        const word = c.check === "other" ? "" : !c.ran ? "not run" : c.verdict === true ? "pass" : c.verdict === false ? "fail" : "null";
        const cls = !c.ran ? "v-not-run" : "v-" + String(c.verdict);
        return h("tr", {class: c.rejected ? "rejected" : null, "data-check": c.check},
          h("td", {}, c.check, c.rejected ? h("span", {class: "chip"}, "rejected") : null),
          h("td", {}, word ? h("span", {class: "badge " + cls}, word) : null),
          h("td", {class: "details"}, h("div", {class: "kv"}, Object.entries(c.details).map(function (kv) {
            return [h("div", {class: "k"}, kv[0]), h("div", {class: "v"}, describe(kv[1]))];
          }))));
      }));
  }

  async function recordPage(src, params) {
    const n = Number(params.get("n"));
    const data = await api("record", {src: src, n: n});
    const row = data.row, record = data.record;
    const nav = h("div", {class: "nav-row"},
      h("a", {class: "button", id: "back", href: lastList && lastList.src === src ? lastList.hash : link("/records", {src: src})}, "← records"),
      n > 0 ? h("a", {class: "button", href: link("/record", {src: src, n: n - 1})}, "‹ previous") : null,
      n + 1 < data.of ? h("a", {class: "button", href: link("/record", {src: src, n: n + 1})}, "next ›") : null,
      h("span", {class: "spacer"}),
      h("a", {class: "button", id: "open-prompt", href: link("/prompt", {src: src, prompt_id: row.prompt_id})},
        data.kind === "eval" ? "Every model's answers to this problem →" : "All samples of this prompt →"));
    const facts = [["file", row.file + ":" + row.line], ["prompt", row.prompt_id + ", sample " + row.sample],
      ["model", row.model], ["teacher", record.teacher], ["tokens", fmt(row.tokens)],
      ["finish", record.finish_reason + (record.cut ? " (reasoning cut off)" : "")],
      ["params", record.params ? JSON.stringify(record.params) : null]];
    return [nav,
      h("h1", {}, h("span", {class: "mono"}, record.id), " ", statusBadges(row)),
      keyValues(facts),
      h("div", {class: "section", id: "prompt"}, h("h2", {}, "Prompt"), messagesBlock(record.messages)),
      h("div", {class: "section", id: "reasoning"}, h("h2", {}, "Reasoning"), reasoningBlock(src, n, record, record.reasoning)),
      h("div", {class: "section", id: "answer"}, h("h2", {}, "Answer"), record.answer ? rich(record.answer) : h("p", {class: "muted"}, "No answer after the reasoning.")),
      h("div", {class: "section versus", id: "versus"},
        h("div", {class: "box", id: "extracted"}, h("h3", {}, "Extracted answer"), math(record.extracted)),
        h("div", {class: "box", id: "reference"}, h("h3", {}, "Reference"), referenceBlock(record))),
      h("div", {class: "section", id: "checks"}, h("h2", {}, "Checks"), checksTable(record.checks)),
      record.source ? h("div", {class: "section"}, h("h2", {}, "Source columns"), h("pre", {class: "json"}, JSON.stringify(record.source, null, 2))) : null];
  }

  // ---------------------------------------------------------------- side by side

  async function promptPage(src, params) {
    const promptId = params.get("prompt_id");
    const data = await api("prompt", {src: src, prompt_id: promptId});
    const title = data.kind === "eval" ? "Every model's answers to problem " : "All samples of prompt ";
    const columns = h("div", {class: "columns", id: "columns"}, data.groups.map(function (group) {
      return h("div", {class: "column", "data-group": group.label},
        h("h2", {}, group.label + " (" + group.cards.length + ")"),
        group.cards.map(function (card) { return sampleCard(src, card); }));
    }));
    return [
      h("div", {class: "nav-row"}, h("a", {class: "button", href: link("/records", {src: src, prompt_id: promptId})}, "← these in the list")),
      h("h1", {}, title, h("span", {class: "mono"}, promptId)),
      data.truncated ? h("div", {class: "banner"}, "Only the first 256 samples are shown.") : null,
      h("div", {class: "section", id: "prompt"}, h("h2", {}, "Prompt"), messagesBlock(data.messages),
        h("h3", {}, "Reference"), referenceBlock(data)),
      columns];
  }

  function sampleCard(src, card) {
    const row = card.row, record = card.record;
    const value = row.grade || row.status;
    return h("div", {class: "card " + value, "data-id": row.id, "data-n": row.n},
      h("div", {class: "head"}, h("a", {class: "mono", href: link("/record", {src: src, n: row.n})}, row.id), statusBadges(row),
        h("span", {class: "muted"}, fmt(row.tokens) + " tokens, " + (row.finish || "?"))),
      h("div", {class: "versus"}, h("div", {class: "box"}, h("h3", {}, "Extracted answer"), math(record.extracted))),
      reasoningBlock(src, row.n, record, undefined),
      record.answer ? rich(record.answer) : h("p", {class: "muted"}, "No answer after the reasoning."));
  }

  // ---------------------------------------------------------------- start

  async function render() {
    const token = ++renderToken;
    const current = route();
    const src = Math.max(0, Number(current.params.get("src") || 0));
    const pages = {"/overview": overviewPage, "/records": recordsPage, "/record": recordPage, "/prompt": promptPage};
    const page = pages[current.path] || overviewPage;
    document.body.removeAttribute("data-ready");
    renderHeader(current.path.slice(1), src);
    main.replaceChildren(h("p", {class: "loading"}, "Loading…"));
    try {
      const content = await page(src, current.params);
      if (token !== renderToken) return;
      main.replaceChildren(append(document.createDocumentFragment(), [content]));
    } catch (error) {
      if (token !== renderToken) return;
      main.replaceChildren(h("p", {class: "error", id: "error"}, String(error.message || error)));
    }
    if (current.path !== "/records") window.scrollTo(0, 0);
    document.body.setAttribute("data-ready", pages[current.path] ? current.path : "/overview");
  }

  async function start() {
    try {
      sources = await api("sources");
    } catch (error) {
      main.replaceChildren(h("p", {class: "error"}, String(error.message || error)));
      return;
    }
    window.addEventListener("hashchange", render);
    const filtered = sources.find(function (s) { return s.kind === "filter"; });
    if (!location.hash && filtered) history.replaceState(null, "", link("/overview", {src: filtered.src}));
    render();
  }

  start();
})();
