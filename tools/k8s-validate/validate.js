#!/usr/bin/env node
// validate.js - validates Kubernetes objects against the API schemas of the
// npm package kubernetes-models, offline.
//
//   node tools/k8s-validate/validate.js < objects.json
//
// Input: a JSON array of objects (tests/deploy renders deploy/k8s with
// `kubectl kustomize`, parses the YAML and passes it here). Output: one line
// per object, "ok KIND NAME" or "FAIL KIND NAME: reason", then a summary.
// Exit status 0 when every object passed, 1 otherwise, 2 on bad input.
//
// Two checks per object:
//  1. schema: the object's apiVersion/kind must be a class of
//     kubernetes-models (unknown kinds fail) and its validate() must pass
//     (types, required fields, enums, formats).
//  2. fields: validate() lets unknown fields through, but the API server
//     drops them or (with strict field validation) refuses them, so a typo
//     such as "readinesProbe" would silently lose a probe. Every field name
//     is checked against the model's TypeScript declaration (.d.ts), which
//     lists each type's fields and the types they hold.
'use strict';

const fs = require('fs');
const path = require('path');

const MODELS = path.join(__dirname, 'node_modules', 'kubernetes-models');

// ---------------------------------------------------------------------------
// Field lists from the .d.ts files.
// ---------------------------------------------------------------------------

// file path -> { imports: Map(name -> file), aliases: Map(exported -> local),
//               interfaces: Map(local -> {props, typeMeta}), types: Set(local) }
const declCache = new Map();

function resolveImport(fromFile, spec) {
  let base;
  if (spec.startsWith('.')) {
    base = path.resolve(path.dirname(fromFile), spec);
  } else {
    base = path.join(__dirname, 'node_modules', spec);
  }
  return base.endsWith('.d.ts') ? base : base + '.d.ts';
}

// Parses a type expression of a property into a small tree:
// {ref: name} | {array: t} | {map: t} | {leaf: true}
function parseType(text) {
  text = text.trim();
  let m = /^Array<(.+)>$/.exec(text);
  if (m) return { array: parseType(m[1]) };
  m = /^\{\s*\[key: string\]:\s*(.+?);?\s*\}$/s.exec(text);
  if (m) return { map: parseType(m[1]) };
  if (/^I[A-Za-z0-9]+$/.test(text)) return { ref: text };
  return { leaf: true }; // string, number, boolean, string unions, any
}

function loadDecl(file) {
  if (declCache.has(file)) return declCache.get(file);
  const src = fs.readFileSync(file, 'utf8');
  const d = { file, imports: new Map(), aliases: new Map(), interfaces: new Map(), types: new Set() };
  for (const m of src.matchAll(/^import \{([^}]+)\} from "([^"]+)";$/gm)) {
    for (const name of m[1].split(',')) d.imports.set(name.trim(), resolveImport(file, m[2]));
  }
  for (const m of src.matchAll(/^export \{([^}]+)\};$/gm)) {
    for (const pair of m[1].split(',')) {
      const [local, exported] = pair.split(' as ').map((s) => s.trim());
      if (exported) d.aliases.set(exported, local);
    }
  }
  for (const m of src.matchAll(/^export declare type (I[A-Za-z0-9]+) =/gm)) d.types.add(m[1]);
  const lines = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const head = /^export interface (I[A-Za-z0-9]+)( extends ([A-Za-z0-9]+))? \{$/.exec(lines[i]);
    if (!head) continue;
    const props = new Map();
    for (i++; i < lines.length && lines[i] !== '}'; i++) {
      const p = /^ {4}"([^"]+)"\??: (.*)$/.exec(lines[i]);
      if (!p) continue;
      let type = p[2];
      if (type === '{') { // a map type over several lines, up to "    };"
        const body = [];
        for (i++; i < lines.length && lines[i] !== '    };'; i++) body.push(lines[i]);
        type = '{' + body.join(' ') + '}';
      } else {
        type = type.replace(/;$/, '');
      }
      props.set(p[1], parseType(type));
    }
    d.interfaces.set(head[1], { props, typeMeta: head[3] === 'TypeMeta' });
  }
  declCache.set(file, d);
  return d;
}

// The interface a type name of file `d` stands for, or null for a leaf
// (a type alias such as Quantity or IntOrString).
function lookupInterface(d, name) {
  if (d.interfaces.has(name)) return { d, iface: d.interfaces.get(name) };
  const local = d.aliases.get(name);
  if (local && d.interfaces.has(local)) return { d, iface: d.interfaces.get(local) };
  if (d.types.has(name) || (local && d.types.has(local))) return null;
  const file = d.imports.get(name);
  if (!file) throw new Error(`${d.file}: cannot resolve type ${name}`);
  const target = loadDecl(file);
  return lookupInterface(target, name);
}

function checkFields(value, type, d, where, errors) {
  if (value === null || value === undefined || type.leaf) return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => checkFields(v, type.array, d, `${where}[${i}]`, errors));
    return;
  }
  if (type.map) {
    if (typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) checkFields(v, type.map, d, `${where}.${k}`, errors);
    }
    return;
  }
  const found = lookupInterface(d, type.ref);
  if (found) checkObject(value, found.iface, found.d, where, errors);
}

function checkObject(value, iface, d, where, errors) {
  if (typeof value !== 'object' || Array.isArray(value)) return; // validate() reports the type
  for (const [k, v] of Object.entries(value)) {
    if (iface.typeMeta && (k === 'apiVersion' || k === 'kind')) continue;
    const t = iface.props.get(k);
    if (!t) {
      errors.push(`${where ? where + '.' : ''}${k}: unknown field`);
      continue;
    }
    checkFields(v, t, d, `${where ? where + '.' : ''}${k}`, errors);
  }
}

// ---------------------------------------------------------------------------
// One object.
// ---------------------------------------------------------------------------

function modelFile(obj) {
  const api = obj.apiVersion;
  const kind = obj.kind;
  if (typeof api !== 'string' || !/^([a-z0-9.-]+\/)?v[0-9]+([a-z]+[0-9]+)?$/.test(api)) return null;
  if (typeof kind !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) return null;
  const file = path.join(MODELS, api === 'v1' ? 'v1' : api, kind + '.js');
  return fs.existsSync(file) ? file : null;
}

function validateOne(obj) {
  const errors = [];
  const file = modelFile(obj);
  if (!file) {
    errors.push(`unknown kind: no kubernetes-models class for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
    return errors;
  }
  const Model = require(file)[obj.kind];
  try {
    new Model(obj).validate();
  } catch (e) {
    errors.push(`schema: ${e.message}`);
  }
  const decl = loadDecl(file.replace(/\.js$/, '.d.ts'));
  const iface = decl.interfaces.get('I' + obj.kind);
  if (!iface) {
    errors.push(`no declaration of I${obj.kind} in ${decl.file}`);
  } else {
    checkObject(obj, iface, decl, '', errors);
  }
  return errors;
}

function main() {
  let objs;
  try {
    const text = process.argv[2] ? fs.readFileSync(process.argv[2], 'utf8') : fs.readFileSync(0, 'utf8');
    objs = JSON.parse(text);
  } catch (e) {
    console.error(`validate.js: cannot read a JSON array of objects: ${e.message}`);
    process.exit(2);
  }
  if (!Array.isArray(objs)) {
    console.error('validate.js: the input is not a JSON array');
    process.exit(2);
  }
  if (!fs.existsSync(MODELS)) {
    console.error(`validate.js: ${MODELS} is missing; run scripts/install-deps.sh`);
    process.exit(2);
  }
  let failed = 0;
  for (const obj of objs) {
    const o = obj && typeof obj === 'object' ? obj : {};
    const name = (o.metadata && o.metadata.name) || '?';
    const errors = validateOne(o);
    if (errors.length === 0) {
      console.log(`ok ${o.kind} ${name}`);
    } else {
      failed++;
      for (const e of errors) console.log(`FAIL ${o.kind} ${name}: ${e}`);
    }
  }
  console.log(`${objs.length - failed} of ${objs.length} objects valid`);
  process.exit(failed ? 1 : 0);
}

main();
