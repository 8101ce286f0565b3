# The bench's app (bind-mounted at /bench/app.pl).
#
# GET /             200 with $GREETING (set by the vassal's `env`, so a reload changes it),
#                   with Content-Length and Connection: close, so that wrk counts a
#                   complete answer and opens a new connection per request
# GET /flood?n=N&tag=T
#                   writes N lines of exactly 100 bytes ("flood T 000000001 xxx...\n") to
#                   stderr, 640 lines per write, and answers when the last write returned
my $app = sub {
    my $env = shift;
    if (($env->{PATH_INFO} // '') ne '/flood') {
        my $body = $ENV{GREETING} // 'Hello World from Docker';
        return [200, ['Content-Type' => 'text/plain', 'Content-Length' => length $body, 'Connection' => 'close'], [$body]];
    }
    my %q = map { split /=/, $_, 2 } split /&/, $env->{QUERY_STRING} // '';
    my ($n, $tag) = ($q{n} // 1000, $q{tag} // 'x');
    my $batch = '';
    for my $i (1 .. $n) {
        my $line = sprintf('flood %s %09d ', $tag, $i);
        $batch .= $line . ('x' x (99 - length $line)) . "\n";
        if ($i % 640 == 0 || $i == $n) {
            my $off = 0;
            while ($off < length $batch) {
                my $w = syswrite(STDERR, $batch, length($batch) - $off, $off);
                die "write: $!" unless defined $w;
                $off += $w;
            }
            $batch = '';
        }
    }
    my $body = "done $n";
    return [200, ['Content-Type' => 'text/plain', 'Content-Length' => length $body], [$body]];
};
