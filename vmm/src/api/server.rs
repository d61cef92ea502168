//! HTTP/1.1 server on a Unix socket.
