#!/usr/bin/perl
# A FastCGI program in Perl on FCGI.pm (Debian's libfcgi-perl), as `fcgi serve --app exec`
# runs it: `FCGI::Request()` accepts on the listening socket on fd 0, and each request gets
# what every program in this directory answers (tests/support/programs.rs reads it): a hello
# line, its pid, the method and query, and the length and SHA-256 of the request body.
# A query with `sleep_ms=N` makes it wait N ms first, so that a test can keep it busy.
use strict;
use warnings;
use Digest::SHA;
use FCGI;
use Time::HiRes qw(usleep);

my %env;
my $request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%env);
while ($request->Accept() >= 0) {
    my $hash = Digest::SHA->new(256);
    my ($length, $chunk) = (0, '');
    while ((my $n = read(STDIN, $chunk, 65536)) > 0) {
        $hash->add($chunk);
        $length += $n;
    }
    my $query = $env{QUERY_STRING} // '';
    usleep($1 * 1000) if $query =~ /sleep_ms=(\d+)/;
    print "Content-Type: text/plain\r\n\r\n",
        "hello from perl\n",
        "pid=$$\n",
        "method=", $env{REQUEST_METHOD} // '', "\n",
        "query=$query\n",
        "length=$length\n",
        "sha256=", $hash->hexdigest, "\n";
}
