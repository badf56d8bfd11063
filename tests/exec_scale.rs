//! The scale of `fcgi serve --app exec -- php-cgi` processes (written next).
