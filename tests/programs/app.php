<?php
// A PHP script for php-cgi under `fcgi serve --app exec -- php-cgi`: php-cgi is the FastCGI
// program (it accepts on fd 0), nginx names this file in SCRIPT_FILENAME, and it answers what
// every program in this directory answers (tests/support/programs.rs reads it): a hello line,
// its pid, the method and query, and the length and SHA-256 of the request body.
// A query with `sleep_ms=N` makes it wait N ms first, so that a test can keep it busy.
header("Content-Type: text/plain");
$body = file_get_contents("php://input");
$query = $_SERVER["QUERY_STRING"] ?? "";
if (preg_match('/sleep_ms=(\d+)/', $query, $m)) {
    usleep((int) $m[1] * 1000);
}
// With APP_RUN_LOG in its environment (`--pass-env`), each request it runs is a line there:
// how a test sees that no request ran twice.
if (getenv("APP_RUN_LOG")) {
    file_put_contents(getenv("APP_RUN_LOG"), getmypid() . " " . $query . "\n", FILE_APPEND | LOCK_EX);
}
echo "hello from php-cgi\n";
echo "pid=", getmypid(), "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
echo "query=", $query, "\n";
echo "length=", strlen($body), "\n";
echo "sha256=", hash("sha256", $body), "\n";
