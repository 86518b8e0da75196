# The driver matrix scenario for Perl's DBD::MariaDB (see tests/drivers.rs).
#
# usage: perl dbd_mariadb_client.pl VARIANT PHASE HOST PORT USER PASSWORD DATABASE
# VARIANT: dbd-mariadb (client-side placeholders) | dbd-mariadb-server-prepare
use strict;
use warnings;
use utf8;
use DBI;

my ($variant, $phase, $host, $port, $user, $password, $database) = @ARGV;
my $gbk_char = "\x{4e57}";    # gbk 0x81 0x5c: its second byte is a backslash
my @steps;

sub json {
    my ($v) = @_;
    return 'null' unless defined $v;
    if (ref $v eq 'ARRAY') {
        return '[' . join(',', map { json($_) } @$v) . ']';
    }
    my $s = "$v";
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([\\"])/\\$1/g;
    $s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
    # Bytes that are not UTF-8 (binary values) as \u00XX of each byte.
    my $out = '';
    for my $ch (split //, $s) {
        $out .= ord($ch) > 0x7f ? sprintf('\\u%04x', ord $ch) : $ch;
    }
    return "\"$out\"";
}

sub connect_db {
    my (%opt) = @_;
    my $dsn = "DBI:MariaDB:database=$database;host=$host;port=$port";
    $dsn .= ';mariadb_server_prepare=1' if $variant eq 'dbd-mariadb-server-prepare';
    return DBI->connect($dsn, $user, $password,
        { RaiseError => 1, PrintError => 0, AutoCommit => 1, %opt });
}

sub step {
    my ($name, $fn) = @_;
    my $r = eval { $fn->() };
    if ($@) {
        my $err = $DBI::err // $@;
        $r = "error $err";
    }
    push @steps, '[' . json($name) . ',' . json($r) . ']';
}

sub insert {
    my ($dbh, $k) = @_;
    my $sth = $dbh->prepare('INSERT INTO w (driver, k, s, b) VALUES (?, ?, ?, ?)');
    $sth->bind_param(1, $variant);
    $sth->bind_param(2, $k);
    $sth->bind_param(3, "é中\x{1F600}");
    $sth->bind_param(4, "\x00\xff'\\\"", DBI::SQL_VARBINARY);
    return $sth->execute + 0;
}

sub rows {
    my ($dbh, $sql, @args) = @_;
    my $all = $dbh->selectall_arrayref($sql, undef, @args);
    return [ map { [ map { defined $_ ? unpack('H*', (utf8::is_utf8($_) ? do { my $c = $_; utf8::encode($c); $c } : $_)) : undef } @$_ ] } @$all ];
}

sub direct {
    my $dbh = connect_db();
    step('autocommit writes', sub { [ map { insert($dbh, $_) } 1 .. 3 ] });
    step('write-only transactions', sub {
        $dbh->begin_work;
        insert($dbh, 4);
        insert($dbh, 5);
        $dbh->commit;
        $dbh->begin_work;
        insert($dbh, 6);
        $dbh->rollback;
        'ok';
    });
    step('autocommit off and on', sub {
        $dbh->{AutoCommit} = 0;
        insert($dbh, 7);
        $dbh->commit;
        $dbh->{AutoCommit} = 1;
        insert($dbh, 8);
    });
    step('update changing nothing', sub {
        $dbh->do('UPDATE w SET s = s WHERE driver = ?', undef, $variant) + 0;
    });
    step('types', sub { rows($dbh, 'SELECT * FROM ty ORDER BY id') });
    step('count', sub { rows($dbh, 'SELECT COUNT(*) FROM w WHERE driver = ?', $variant) });
    step('duplicate key', sub { insert($dbh, 1) });
    step('syntax error', sub { rows($dbh, 'SELEC 1') });
    step('round trip', sub {
        rows($dbh, 'SELECT k, s, b, HEX(s), HEX(b) FROM w WHERE driver = ? ORDER BY k', $variant);
    });
    $dbh->disconnect;

    $dbh = connect_db();
    $dbh->do("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
    for my $name (qw(eve bob)) {
        $dbh->do('INSERT INTO acct (name, note) VALUES (?, ?)', undef, "$variant-$name", '-');
    }
    step('escaping without backslashes', sub {
        $dbh->do('UPDATE acct SET note = ? WHERE name = ?', undef, "x' WHERE 1=1 #", "$variant-eve") + 0;
    });
    step('accounts', sub {
        rows($dbh, 'SELECT name, note FROM acct WHERE name LIKE ? ORDER BY name', "$variant-%");
    });
    $dbh->disconnect;
    my $version = "DBD::MariaDB $DBD::MariaDB::VERSION";
    print '{"driver":' . json($variant) . ',"version":' . json($version) . ',"steps":[' . join(',', @steps) . "]}\n";
}

sub stall {
    my $dbh = connect_db();
    $| = 1;
    print "ready\n";
    my $go = <STDIN>;
    insert($dbh, $_) for 100 .. 104;
    $dbh->begin_work;
    insert($dbh, 105);
    insert($dbh, 106);
    $dbh->commit;
    $dbh->{AutoCommit} = 0;
    insert($dbh, 107);
    $dbh->commit;
    $dbh->{AutoCommit} = 1;
    insert($dbh, 108);
    $dbh->disconnect;
    print "done\n";
}

$phase eq 'direct' ? direct() : stall();
