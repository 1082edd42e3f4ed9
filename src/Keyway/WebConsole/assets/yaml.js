// The YAML the console reads and writes in a resource's "Source" view, with no library and no build
// step: block mappings and sequences (also "- key: value" items), plain, 'single' and "double"
// quoted scalars, | and > block scalars, one-line [flow] and {flow} collections, comments. That is
// what `keyway resource get` prints and what people write by hand. Anchors, aliases, tags and
// multi-line quoted or plain scalars are refused with their line, never guessed at.
'use strict';

class YamlError extends Error {}

/** A YAML (or JSON) document as a value; throws YamlError naming the line. */
function yamlParse(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try { return JSON.parse(trimmed); } catch { /* YAML's flow style is looser than JSON: read it as YAML below */ }
  }
  const lines = text.replace(/\r\n?/g, '\n').split('\n').map((raw, i) => ({ no: i + 1, raw, indent: raw.search(/\S|$/), text: raw.trim() }));
  const fail = (line, message) => { throw new YamlError(`line ${line.no}: ${message}`); };
  let at = 0;
  // Blank lines, comments and document markers carry no structure.
  const skip = () => {
    while (at < lines.length && (lines[at].text === '' || lines[at].text.startsWith('#') || lines[at].text === '---' || lines[at].text === '...')) {
      if (lines[at].text === '---' && at > 0 && lines.slice(0, at).some((l) => l.text && !l.text.startsWith('#') && l.text !== '---')) {
        fail(lines[at], 'a second document: paste one resource at a time.');
      }
      at++;
    }
    return at < lines.length ? lines[at] : null;
  };
  for (const line of lines) if (/^\t/.test(line.raw.slice(0, line.indent + 1)) || line.raw.slice(0, line.indent).includes('\t')) fail(line, 'indent with spaces, not tabs.');

  function node(indent) {
    const line = skip();
    if (!line || line.indent < indent) return null;
    if (line.text === '-' || line.text.startsWith('- ')) return sequence(line.indent);
    if (keyOf(line.text)) return mapping(line.indent);
    at++;
    const value = scalar(line, line.text, line.indent - 1);
    const next = skip();
    if (next && next.indent > line.indent) fail(next, 'a plain value cannot continue on the next line; quote it on one line or use a | block.');
    return value;
  }

  function mapping(indent) {
    const out = {};
    for (let line = skip(); line && line.indent === indent; line = skip()) {
      const key = keyOf(line.text);
      if (!key) fail(line, 'expected "key: value" here.');
      if (Object.prototype.hasOwnProperty.call(out, key.name)) fail(line, `'${key.name}' appears twice.`);
      at++;
      out[key.name] = value(line, key.rest, indent);
    }
    const stray = skip();
    if (stray && stray.indent > indent) fail(stray, 'this line is indented more than the field before it expects.');
    return out;
  }

  function sequence(indent) {
    const out = [];
    for (let line = skip(); line && line.indent === indent && (line.text === '-' || line.text.startsWith('- ')); line = skip()) {
      const rest = line.text.slice(1).trimStart();
      if (rest && (keyOf(rest) || rest === '-' || rest.startsWith('- '))) {
        // "- key: value": a mapping (or a sequence) whose first line starts after the dash.
        lines[at] = { ...line, indent: line.raw.indexOf(rest, line.indent + 1), text: rest };
        out.push(node(lines[at].indent));
      } else {
        at++;
        out.push(value(line, rest, indent));
      }
    }
    return out;
  }

  /** What follows "key:" or "-": inline, a block scalar, or a nested block on the next lines. */
  function value(line, rest, indent) {
    const text = stripComment(rest);
    if (/^[|>]/.test(text)) return block(line, text, indent);
    if (text !== '') return scalar(line, text, indent);
    const next = skip();
    if (!next) return null;
    // A sequence may sit at its key's own indent ("key:\n- a").
    if (next.indent > indent || (next.indent === indent && (next.text === '-' || next.text.startsWith('- ')) && !line.text.startsWith('-'))) return node(next.indent);
    return null;
  }

  function block(line, header, indent) {
    const m = /^([|>])([+-]?)([1-9]?)([+-]?)$/.exec(header);
    if (!m) fail(line, `'${header}' is not a block scalar header.`);
    const folded = m[1] === '>';
    const chomp = m[2] || m[4];
    const body = [];
    let width = m[3] ? indent + Number(m[3]) : -1;
    while (at < lines.length) {
      const l = lines[at];
      if (l.text === '') { body.push(''); at++; continue; }
      if (width < 0) width = l.indent;
      if (l.indent < width || width <= indent) break;
      body.push(l.raw.slice(width));
      at++;
    }
    let trailing = 0;
    while (body.length && body[body.length - 1] === '') { body.pop(); trailing++; }
    let text = folded
      ? body.reduce((acc, l, i) => {
        // Folded: lines join with a space; an empty line is a line break; more-indented lines stay as written.
        if (i === 0) return l;
        if (l === '') return acc + '\n';
        if (body[i - 1] === '') return acc + l;
        return acc + (/^\s/.test(l) || /^\s/.test(body[i - 1]) ? '\n' : ' ') + l;
      }, '')
      : body.join('\n');
    if (chomp === '+') text += '\n'.repeat(trailing + (body.length ? 1 : 0));
    else if (chomp !== '-' && body.length) text += '\n';
    return text;
  }

  function scalar(line, raw, indent) {
    const text = stripComment(raw);
    if (/^[&*!]/.test(text)) fail(line, 'anchors, aliases and tags are not supported here: write the value out.');
    if (text.startsWith('"') || text.startsWith("'")) {
      const [value, end] = quoted(line, text, 0);
      if (text.slice(end).trim()) fail(line, 'unexpected text after the quoted value.');
      return value;
    }
    if (text.startsWith('[') || text.startsWith('{')) {
      const flow = { s: text, i: 0 };
      const value = flowValue(line, flow);
      if (flow.s.slice(flow.i).trim()) fail(line, 'unexpected text after the closing bracket.');
      return value;
    }
    if (/^[|>]/.test(text)) return block(line, text, indent);
    return plain(text);
  }

  function quoted(line, text, start) {
    const q = text[start];
    let i = start + 1;
    let out = '';
    for (; i < text.length; i++) {
      const c = text[i];
      if (q === "'" && c === "'") {
        if (text[i + 1] === "'") { out += "'"; i++; continue; }
        return [out, i + 1];
      }
      if (q === '"' && c === '\\') {
        const e = text[++i];
        const simple = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\', '/': '/', 0: '\0', b: '\b', f: '\f', e: '\x1b', ' ': ' ', a: '\x07', v: '\v', N: '\x85', _: '\xa0' };
        if (e in simple) out += simple[e];
        else if (e === 'x' || e === 'u' || e === 'U') {
          const n = { x: 2, u: 4, U: 8 }[e];
          const hex = text.slice(i + 1, i + 1 + n);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail(line, `'\\${e}${hex}' is not an escape.`);
          out += String.fromCodePoint(parseInt(hex, 16));
          i += n;
        } else fail(line, `'\\${e}' is not an escape.`);
        continue;
      }
      if (q === '"' && c === '"') return [out, i + 1];
      out += c;
    }
    return fail(line, 'the quoted value does not end on this line.');
  }

  function flowValue(line, f) {
    const ws = () => { while (f.i < f.s.length && f.s[f.i] === ' ') f.i++; };
    ws();
    const c = f.s[f.i];
    if (c === '[' || c === '{') {
      const close = c === '[' ? ']' : '}';
      const out = c === '[' ? [] : {};
      f.i++;
      for (;;) {
        ws();
        if (f.s[f.i] === close) { f.i++; return out; }
        if (c === '[') out.push(flowValue(line, f));
        else {
          const key = flowValue(line, f);
          ws();
          if (f.s[f.i] !== ':') fail(line, 'expected ":" after a key in { }.');
          f.i++;
          out[String(key)] = flowValue(line, f);
        }
        ws();
        if (f.s[f.i] === ',') { f.i++; continue; }
        if (f.s[f.i] !== close) fail(line, `expected "," or "${close}".`);
      }
    }
    if (c === '"' || c === "'") {
      const [value, end] = quoted(line, f.s, f.i);
      f.i = end;
      return value;
    }
    const m = /^[^,\]}]*?(?=\s*(?:[,\]}]|:\s|:$|$))/.exec(f.s.slice(f.i));
    f.i += m[0].length;
    return plain(m[0].trim());
  }

  const root = node(0);
  const left = skip();
  if (left) fail(left, 'this line does not belong to the structure above it (check its indentation).');
  return root;
}

/** "key: rest" → {name, rest}, for plain and quoted keys; null when the text is not a key. */
function keyOf(text) {
  if (text.startsWith('"') || text.startsWith("'")) {
    try {
      const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+|$)(.*)$/.exec(text);
      if (!m) return null;
      return { name: m[1][0] === '"' ? JSON.parse(m[1]) : m[1].slice(1, -1).replace(/''/g, "'"), rest: m[2] };
    } catch { return null; }
  }
  if (/^[[{#&*!|>%@`-]/.test(text) && !/^-[^\s]/.test(text)) return null;
  const m = /^([^#]*?[^\s]?)\s*:(?:\s+(.*)|)$/.exec(text);
  if (!m || m[1].includes(': ')) return null;
  return { name: m[1].trim(), rest: m[2] || '' };
}

/** The text before a comment: a # that starts the text or follows a space, outside quotes. */
function stripComment(text) {
  let q = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '\\' && q === '"') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s[{,:]/.test(text[i - 1])) q = c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) return text.slice(0, i).trimEnd();
  }
  return text.trimEnd();
}

function plain(text) {
  if (text === '' || text === '~' || /^null$/i.test(text)) return null;
  if (/^(true|false)$/i.test(text)) return text.toLowerCase() === 'true';
  if (/^[-+]?\d+$/.test(text)) return Number(text);
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  return text;
}

/** A value as block-style YAML, strings quoted only where plain text would read as something else. */
function yamlStringify(value) {
  const pad = (n) => ' '.repeat(n);
  const isBlock = (v) => v !== null && typeof v === 'object' && Object.keys(v).length > 0;
  function str(s, indent) {
    if (s.includes('\n') && !/[ \t]\n|[ \t]$|^\s/.test(s) && !s.endsWith('\n\n') && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s)) {
      const head = s.endsWith('\n') ? '|' : '|-';
      return head + '\n' + s.replace(/\n$/, '').split('\n').map((l) => (l ? pad(indent) + l : '')).join('\n');
    }
    const safe = /^[A-Za-z0-9_./(][^\n]*$/.test(s) && !/: |:$| #|^[-?:,[\]{}#&*!|>'"%@`]|\s$/.test(s) && typeof plain(s) === 'string';
    return safe ? s : JSON.stringify(s);
  }
  function scalarText(v, indent) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return str(v, indent);
    if (Array.isArray(v)) return '[]';
    if (typeof v === 'object') return '{}';
    return String(v);
  }
  function emit(v, indent) {
    if (Array.isArray(v)) {
      return v.map((item) => {
        if (isBlock(item)) return pad(indent) + '- ' + emit(item, indent + 2).slice(indent + 2);
        return pad(indent) + '- ' + scalarText(item, indent + 2);
      }).join('\n');
    }
    return Object.entries(v).filter(([, x]) => x !== undefined && x !== null).map(([k, x]) => {
      const key = str(k, indent) === k && !k.includes('\n') ? k : JSON.stringify(k);
      if (isBlock(x)) return pad(indent) + key + ':\n' + emit(x, indent + 2);
      return pad(indent) + key + ': ' + scalarText(x, indent + 2);
    }).join('\n');
  }
  return isBlock(value) ? emit(value, 0) + '\n' : scalarText(value, 0) + '\n';
}
