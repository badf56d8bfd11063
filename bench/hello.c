/*
 * The hello app in C on libfcgi (fcgi2), for `make bench`: the fastest FastCGI peer there is,
 * a single-threaded loop that accepts one connection at a time and answers each request with
 * the same 13 bytes as `fcgi serve --app hello`. bench/run.sh compiles it into its temporary
 * directory (gcc -O2 hello.c -lfcgi) and starts 4 of them under spawn-fcgi, which hands them
 * the listening socket on fd 0.
 */
#include <fcgiapp.h>

int main(void)
{
    FCGX_Request request;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&request, 0, 0) != 0)
        return 1;
    /* FCGX_Accept_r keeps the connection when the web server asked for FCGI_KEEP_CONN, and then
     * waits on it, not on the listening socket, for the next request. */
    while (FCGX_Accept_r(&request) >= 0) {
        FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, world!", request.out);
        FCGX_Finish_r(&request);
    }
    return 0;
}
