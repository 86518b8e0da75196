"""The driver matrix scenario for Python drivers (see tests/drivers.rs).

usage: python_client.py VARIANT PHASE HOST PORT USER PASSWORD DATABASE

VARIANT: pymysql | connector-pure | connector-cext-prepared
PHASE:   direct (print every step's outcome as one JSON object)
       | stall  (connect, print "ready", wait for a line on stdin, write,
                 print "done")
"""
import json
import sys

variant, phase, host, port, user, password, database = sys.argv[1:8]
port = int(port)
GBK_CHAR = "\u4e57"  # gbk 0x81 0x5c: its second byte is a backslash
steps = []


def show(v):
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    return repr(v)


def connect(charset="utf8mb4"):
    if variant == "pymysql":
        import pymysql
        return pymysql.connect(host=host, port=port, user=user, password=password,
                               database=database, charset=charset)
    import mysql.connector
    return mysql.connector.connect(host=host, port=port, user=user, password=password,
                                   database=database, charset=charset,
                                   use_pure=(variant == "connector-pure"))


def cursor(conn):
    if variant == "connector-cext-prepared":
        return conn.cursor(prepared=True)
    return conn.cursor()


def ph(sql):
    # The prepared cursor takes ? placeholders; the others %s.
    return sql.replace("%s", "?") if variant == "connector-cext-prepared" else sql


def step(name, fn):
    try:
        steps.append([name, fn()])
    except Exception as e:  # noqa: BLE001 - the error code is the outcome
        code = getattr(e, "errno", None) or (e.args[0] if e.args else None)
        steps.append([name, "error %s" % code])


def insert(conn, k, s="é中😀", b=b"\x00\xff'\\\""):
    cur = cursor(conn)
    cur.execute(ph("INSERT INTO w (driver, k, s, b) VALUES (%s, %s, %s, %s)"),
                (variant, k, s, b))
    return cur.rowcount


def rows(conn, sql, args=()):
    cur = cursor(conn)
    cur.execute(ph(sql), args)
    return [[show(v) for v in r] for r in cur.fetchall()]


def set_autocommit(conn, on):
    conn.autocommit(on) if variant == "pymysql" else setattr(conn, "autocommit", on)


def direct():
    # The driver's own default (PyMySQL and Connector/Python: autocommit
    # off), as an ORM uses it: writes in a transaction, then commit.
    conn = connect()
    step("default mode writes", lambda: [insert(conn, k) for k in (10, 11)])
    step("default mode in transaction", lambda: conn.in_transaction if hasattr(conn, "in_transaction") else None)
    step("default mode commit", conn.commit)
    conn.close()

    conn = connect()
    set_autocommit(conn, True)
    step("autocommit writes", lambda: [insert(conn, k) for k in (1, 2, 3)])

    def txn():
        conn.begin() if hasattr(conn, "begin") else conn.start_transaction()
        insert(conn, 4)
        insert(conn, 5)
        conn.commit()
        conn.begin() if hasattr(conn, "begin") else conn.start_transaction()
        insert(conn, 6)
        conn.rollback()
    step("write-only transactions", txn)

    def toggle():
        set_autocommit(conn, False)
        insert(conn, 7)
        conn.commit()
        set_autocommit(conn, True)
        insert(conn, 8)
    step("autocommit off and on", toggle)
    def update_nothing():
        cur = cursor(conn)
        cur.execute(ph("UPDATE w SET s = s WHERE driver = %s"), (variant,))
        return cur.rowcount
    step("update changing nothing", update_nothing)
    step("types", lambda: rows(conn, "SELECT * FROM ty ORDER BY id"))
    step("duplicate key", lambda: insert(conn, 1))
    step("syntax error", lambda: rows(conn, "SELEC 1"))
    step("round trip", lambda: rows(
        conn, "SELECT k, s, b, HEX(s), HEX(b) FROM w WHERE driver = %s ORDER BY k", (variant,)))
    conn.close()

    # A session in NO_BACKSLASH_ESCAPES: the driver escapes by what the
    # server's status flags say.
    conn = connect()
    set_autocommit(conn, True)
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
    for name in ("eve", "bob"):
        cur.execute("INSERT INTO acct (name, note) VALUES (%s, %s)", (variant + "-" + name, "-"))
    step("escaping without backslashes", lambda: cur.execute(
        "UPDATE acct SET note = %s WHERE name = %s", ("x' WHERE 1=1 #", variant + "-eve")))
    step("accounts", lambda: rows(
        conn, "SELECT name, note FROM acct WHERE name LIKE %s ORDER BY name", (variant + "-%",)))
    conn.close()

    # A gbk session: a character whose second byte is a backslash, and a quote.
    conn = connect("gbk")
    set_autocommit(conn, True)
    step("gbk escaping", lambda: cursor(conn).execute(
        ph("INSERT INTO w (driver, k, g) VALUES (%s, %s, %s)"), (variant, 9, GBK_CHAR + "'")))
    step("gbk stored", lambda: rows(
        conn, "SELECT HEX(g), @@character_set_client FROM w WHERE driver = %s AND k = 9", (variant,)))
    conn.close()
    if variant == "pymysql":
        import pymysql
        version = "PyMySQL " + ".".join(map(str, pymysql.VERSION[:3]))
    else:
        import mysql.connector
        version = "mysql-connector-python " + mysql.connector.__version__
    print(json.dumps({"driver": variant, "version": version, "steps": steps}))


def stall():
    conn = connect()
    set_autocommit(conn, True)
    print("ready", flush=True)
    sys.stdin.readline()
    for k in range(100, 105):
        insert(conn, k)
    conn.begin() if hasattr(conn, "begin") else conn.start_transaction()
    insert(conn, 105)
    insert(conn, 106)
    conn.commit()
    set_autocommit(conn, False)
    insert(conn, 107)
    conn.commit()
    set_autocommit(conn, True)
    insert(conn, 108)
    conn.close()
    print("done", flush=True)


direct() if phase == "direct" else stall()
