// The driver matrix scenario for Node's mysql2 (see tests/drivers.rs).
//
// usage: node mysql2_client.js VARIANT PHASE HOST PORT USER PASSWORD DATABASE
// VARIANT: mysql2-query (client-side escaping) | mysql2-execute (server prepare)
'use strict';
const mysql = require('mysql2/promise');
const readline = require('readline');

const [variant, phase, host, port, user, password, database] = process.argv.slice(2);
const GBK_CHAR = '\u4e57'; // gbk 0x81 0x5c: its second byte is a backslash
const steps = [];

function show(v) {
  if (v === null || v === undefined) return 'null';
  if (Buffer.isBuffer(v)) return '0x' + v.toString('hex');
  if (v instanceof Date) return 'date ' + v.toISOString();
  return JSON.stringify(v);
}

async function connect(charset = 'UTF8MB4_GENERAL_CI') {
  return mysql.createConnection({
    host, port: Number(port), user, password, database, charset,
    supportBigNumbers: true, bigNumberStrings: true, dateStrings: false,
  });
}

async function run(conn, sql, args = []) {
  return variant === 'mysql2-execute' ? conn.execute(sql, args) : conn.query(sql, args);
}

async function step(name, fn) {
  try {
    steps.push([name, await fn()]);
  } catch (e) {
    steps.push([name, 'error ' + (e.errno || e.code || e.message)]);
  }
}

async function insert(conn, k, s = 'é中😀', b = Buffer.from([0, 0xff, 0x27, 0x5c, 0x22])) {
  const [r] = await run(conn, 'INSERT INTO w (driver, k, s, b) VALUES (?, ?, ?, ?)', [variant, k, s, b]);
  return r.affectedRows;
}

async function rows(conn, sql, args = []) {
  const [rs] = await run(conn, sql, args);
  return rs.map((r) => Object.values(r).map(show));
}

async function direct() {
  let conn = await connect();
  await step('autocommit writes', async () => [await insert(conn, 1), await insert(conn, 2), await insert(conn, 3)]);
  await step('write-only transactions', async () => {
    await conn.beginTransaction();
    await insert(conn, 4);
    await insert(conn, 5);
    await conn.commit();
    await conn.beginTransaction();
    await insert(conn, 6);
    await conn.rollback();
  });
  await step('autocommit off and on', async () => {
    await conn.query('SET autocommit = 0');
    await insert(conn, 7);
    await conn.commit();
    await conn.query('SET autocommit = 1');
    await insert(conn, 8);
  });
  await step('update changing nothing', async () => {
    const [r] = await run(conn, 'UPDATE w SET s = s WHERE driver = ?', [variant]);
    return r.affectedRows;
  });
  // Every column but the JSON one: MariaDB marks JSON columns in its
  // extended metadata, which sluice does not pass on, so mysql2 reads them
  // as text through sluice (the README lists this difference).
  await step('types', () => rows(conn, 'SELECT id, vc, vl, vg, vb, bl, de, dt, n, d, bi FROM ty ORDER BY id'));
  await step('json as text', () => rows(conn, 'SELECT CAST(js AS CHAR) FROM ty ORDER BY id'));
  await step('columns', async () => {
    const [, fields] = await run(conn, 'SELECT vc, vb, de, dt FROM ty WHERE id = 1');
    return fields.map((f) => [f.name, f.characterSet, f.columnLength, f.columnType, f.flags, f.decimals]);
  });
  await step('duplicate key', () => insert(conn, 1));
  await step('syntax error', () => rows(conn, 'SELEC 1'));
  await step('round trip', () => rows(conn, 'SELECT k, s, b, HEX(s), HEX(b) FROM w WHERE driver = ? ORDER BY k', [variant]));
  await conn.end();

  conn = await connect();
  await conn.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
  for (const name of ['eve', 'bob']) {
    await run(conn, 'INSERT INTO acct (name, note) VALUES (?, ?)', [variant + '-' + name, '-']);
  }
  await step('escaping without backslashes', async () => {
    const [r] = await run(conn, 'UPDATE acct SET note = ? WHERE name = ?', ["x' WHERE 1=1 #", variant + '-eve']);
    return r.affectedRows;
  });
  await step('accounts', () => rows(conn, 'SELECT name, note FROM acct WHERE name LIKE ? ORDER BY name', [variant + '-%']));
  await conn.end();

  conn = await connect('GBK_CHINESE_CI');
  await step('gbk escaping', async () => {
    const [r] = await run(conn, 'INSERT INTO w (driver, k, g) VALUES (?, ?, ?)', [variant, 9, GBK_CHAR + "'"]);
    return r.affectedRows;
  });
  await step('gbk stored', () => rows(conn, 'SELECT HEX(g), @@character_set_client FROM w WHERE driver = ? AND k = 9', [variant]));
  await conn.end();
  const version = 'mysql2 ' + require('mysql2/package.json').version;
  console.log(JSON.stringify({ driver: variant, version, steps }));
}

async function stall() {
  const conn = await connect();
  console.log('ready');
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  for (let k = 100; k < 105; k++) await insert(conn, k);
  await conn.beginTransaction();
  await insert(conn, 105);
  await insert(conn, 106);
  await conn.commit();
  await conn.query('SET autocommit = 0');
  await insert(conn, 107);
  await conn.commit();
  await conn.query('SET autocommit = 1');
  await insert(conn, 108);
  await conn.end();
  console.log('done');
}

(phase === 'direct' ? direct() : stall()).catch((e) => {
  console.error(e);
  process.exit(1);
});
