<?php
// The hello app for PHP-FPM in `make bench`: the same 13 bytes as `fcgi serve --app hello`.
header("Content-Type: text/plain");
echo "Hello, world!";
