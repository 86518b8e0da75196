// The driver matrix scenario for MariaDB Connector/J (see tests/drivers.rs).
//
// usage: java -cp .:mariadb-java-client.jar ConnectorJClient VARIANT PHASE HOST PORT USER PASSWORD DATABASE
// VARIANT: connectorj-text | connectorj-server-prepared (useServerPrepStmts=true)

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

public class ConnectorJClient {
    static String variant, host, port, user, password, database;
    static final List<String> steps = new ArrayList<>();
    static final String GBK_CHAR = "\u4e57"; // gbk 0x81 0x5c

    interface Step { Object run() throws Exception; }

    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : (List<?>) v) { if (b.length() > 1) b.append(','); b.append(json(o)); }
            return b.append(']').toString();
        }
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        StringBuilder b = new StringBuilder("\"");
        for (char c : v.toString().toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static void step(String name, Step s) {
        Object r;
        try { r = s.run(); } catch (SQLException e) { r = "error " + e.getErrorCode(); }
        catch (Exception e) { r = "error " + e; }
        steps.add("[" + json(name) + "," + json(r) + "]");
    }

    static Connection connect(String extra) throws SQLException {
        String url = "jdbc:mariadb://" + host + ":" + port + "/" + database + "?user=" + user
            + "&password=" + password
            + (variant.equals("connectorj-server-prepared") ? "&useServerPrepStmts=true" : "")
            + extra;
        return DriverManager.getConnection(url);
    }

    static String hex(byte[] b) {
        if (b == null) return "null";
        StringBuilder s = new StringBuilder("0x");
        for (byte x : b) s.append(String.format("%02x", x));
        return s.toString();
    }

    static int insert(Connection c, int k) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("INSERT INTO w (driver, k, s, b) VALUES (?, ?, ?, ?)")) {
            p.setString(1, variant);
            p.setInt(2, k);
            p.setString(3, "é中😀");
            p.setBytes(4, new byte[] {0, (byte) 0xff, 0x27, 0x5c, 0x22});
            return p.executeUpdate();
        }
    }

    static List<Object> rows(Connection c, String sql, Object... args) throws SQLException {
        List<Object> out = new ArrayList<>();
        try (PreparedStatement p = c.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) p.setObject(i + 1, args[i]);
            try (ResultSet rs = p.executeQuery()) {
                ResultSetMetaData m = rs.getMetaData();
                while (rs.next()) {
                    List<Object> row = new ArrayList<>();
                    for (int i = 1; i <= m.getColumnCount(); i++) {
                        int t = m.getColumnType(i);
                        boolean binary = t == java.sql.Types.VARBINARY || t == java.sql.Types.BINARY
                            || t == java.sql.Types.LONGVARBINARY || t == java.sql.Types.BLOB;
                        row.add(binary ? hex(rs.getBytes(i)) : rs.getString(i));
                    }
                    out.add(row);
                }
            }
        }
        return out;
    }

    static void direct() throws Exception {
        Connection c = connect("");
        step("autocommit writes", () -> List.of(insert(c, 1), insert(c, 2), insert(c, 3)));
        step("write-only transactions", () -> {
            c.setAutoCommit(false);
            insert(c, 4);
            insert(c, 5);
            c.commit();
            insert(c, 6);
            c.rollback();
            c.setAutoCommit(true);
            return "ok";
        });
        step("autocommit off and on", () -> {
            c.setAutoCommit(false);
            insert(c, 7);
            c.commit();
            c.setAutoCommit(true);
            return insert(c, 8);
        });
        step("update changing nothing", () -> {
            try (PreparedStatement p = c.prepareStatement("UPDATE w SET s = s WHERE driver = ?")) {
                p.setString(1, variant);
                return p.executeUpdate();
            }
        });
        step("types", () -> rows(c, "SELECT * FROM ty ORDER BY id"));
        step("column types", () -> {
            List<Object> out = new ArrayList<>();
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT * FROM ty WHERE id = 1")) {
                ResultSetMetaData m = rs.getMetaData();
                for (int i = 1; i <= m.getColumnCount(); i++) {
                    out.add(List.of(m.getColumnName(i), m.getColumnTypeName(i), m.getPrecision(i), m.getScale(i)));
                }
            }
            return out;
        });
        step("count", () -> rows(c, "SELECT COUNT(*) FROM w WHERE driver = ?", variant));
        step("duplicate key", () -> insert(c, 1));
        step("syntax error", () -> rows(c, "SELEC 1"));
        step("round trip", () -> rows(c, "SELECT k, s, b, HEX(s), HEX(b) FROM w WHERE driver = ? ORDER BY k", variant));
        c.close();

        Connection n = connect("");
        try (Statement s = n.createStatement()) {
            s.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
        }
        for (String name : new String[] {"eve", "bob"}) {
            try (PreparedStatement p = n.prepareStatement("INSERT INTO acct (name, note) VALUES (?, ?)")) {
                p.setString(1, variant + "-" + name);
                p.setString(2, "-");
                p.executeUpdate();
            }
        }
        step("escaping without backslashes", () -> {
            try (PreparedStatement p = n.prepareStatement("UPDATE acct SET note = ? WHERE name = ?")) {
                p.setString(1, "x' WHERE 1=1 #");
                p.setString(2, variant + "-eve");
                return p.executeUpdate();
            }
        });
        step("accounts", () -> rows(n, "SELECT name, note FROM acct WHERE name LIKE ? ORDER BY name", variant + "-%"));
        n.close();

        Connection g = connect("&sessionVariables=character_set_client=gbk,character_set_connection=gbk");
        step("gbk escaping", () -> {
            try (PreparedStatement p = g.prepareStatement("INSERT INTO w (driver, k, g) VALUES (?, ?, ?)")) {
                p.setString(1, variant);
                p.setInt(2, 9);
                p.setString(3, GBK_CHAR + "'");
                return p.executeUpdate();
            }
        });
        step("gbk stored", () -> rows(g, "SELECT HEX(g) FROM w WHERE driver = ? AND k = 9", variant));
        String version = "MariaDB Connector/J " + g.getMetaData().getDriverVersion();
        g.close();
        System.out.println("{\"driver\":" + json(variant) + ",\"version\":" + json(version)
            + ",\"steps\":[" + String.join(",", steps) + "]}");
    }

    static void stall() throws Exception {
        Connection c = connect("");
        System.out.println("ready");
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in)).readLine();
        for (int k = 100; k < 105; k++) insert(c, k);
        c.setAutoCommit(false);
        insert(c, 105);
        insert(c, 106);
        c.commit();
        c.setAutoCommit(true);
        c.setAutoCommit(false);
        insert(c, 107);
        c.commit();
        c.setAutoCommit(true);
        insert(c, 108);
        c.close();
        System.out.println("done");
    }

    public static void main(String[] a) throws Exception {
        variant = a[0];
        host = a[2]; port = a[3]; user = a[4]; password = a[5]; database = a[6];
        if (a[1].equals("direct")) direct(); else stall();
    }
}
