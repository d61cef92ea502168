//! HTTP/1.1 server on a Unix socket.
//!
//! [`start`] binds the socket and serves it from a dedicated thread that runs a
//! current-thread tokio runtime and hyper's HTTP/1 connection handling (keep-alive, many
//! requests per connection). Each request's body is read (up to [`MAX_BODY_BYTES`]) and
//! handed to [`routes::dispatch`], which calls the [`VmmControl`] directly on the API thread.

use std::convert::Infallible;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::routes::{self, ApiRequest, ApiResponse};
use super::{ApiError, VmmControl};

mod socket;

#[cfg(test)]
mod tests;

use socket::SocketFile;

/// Largest request body accepted, in bytes; larger ones are answered with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Bodies over the limit but at most this long are read and discarded so that the client
/// sees the 413 and the connection stays usable; longer ones make the server close it.
const MAX_DISCARDED_BYTES: usize = 4 * 1024 * 1024;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The socket path could not be examined.
    #[error("cannot examine the API socket path {path}: {source}")]
    Inspect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Something other than a socket exists at the socket path.
    #[error("refusing to replace {path} with the API socket: it exists and is not a socket")]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// A live server already listens on the socket path.
    #[error("the API socket {path} is in use by another process")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// A stale socket file could not be removed.
    #[error("cannot remove the stale API socket {path}: {source}")]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Binding the socket failed.
    #[error("cannot bind the API socket {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The async runtime or the server thread could not be set up.
    #[error("cannot set up the API server thread: {0}")]
    Setup(#[source] io::Error),
}

/// A running API server. Dropping it shuts it down like [`ApiServer::shutdown`].
#[derive(Debug)]
pub struct ApiServer {
    socket: SocketFile,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// The path of the socket the server listens on.
    pub fn socket_path(&self) -> &Path {
        self.socket.path()
    }

    /// Stops accepting connections, closes open ones, joins the server thread and removes
    /// the socket file.
    pub fn shutdown(mut self) {
        self.stop_and_clean_up();
    }

    fn stop_and_clean_up(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may already have ended; then there is nobody to tell.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the API server thread panicked");
            }
        }
        self.socket.remove();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_and_clean_up();
    }
}

/// Starts serving the API on a Unix socket at `socket_path`, calling `control`.
///
/// A stale socket file at that path (one nobody accepts connections on) is replaced; any
/// other existing file is an error. Returns once the socket accepts connections.
pub fn start(
    socket_path: &Path,
    control: Arc<dyn VmmControl>,
) -> Result<ApiServer, ApiServerError> {
    socket::remove_stale(socket_path)?;
    let (listener, socket) = SocketFile::bind(socket_path)?;
    // From here on, `socket` is removed again if anything fails.
    let setup = || -> io::Result<(tokio::runtime::Runtime, tokio::net::UnixListener)> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::UnixListener::from_std(listener)?
        };
        Ok((runtime, listener))
    };
    let (runtime, listener) = match setup() {
        Ok(parts) => parts,
        Err(e) => {
            socket.remove();
            return Err(ApiServerError::Setup(e));
        }
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("reprise-api".into())
        .spawn(move || runtime.block_on(accept_loop(listener, control, stop_rx)));
    match spawned {
        Ok(thread) => Ok(ApiServer {
            socket,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Err(e) => {
            socket.remove();
            Err(ApiServerError::Setup(e))
        }
    }
}

/// Accepts connections until told to stop (or until the [`ApiServer`] is gone). Returning
/// ends the runtime, which drops every connection task.
async fn accept_loop(
    listener: tokio::net::UnixListener,
    control: Arc<dyn VmmControl>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&control)));
                }
                Err(e) => {
                    log::warn!("API socket: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            },
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it or it fails.
async fn serve_connection(stream: UnixStream, control: Arc<dyn VmmControl>) {
    let service = service_fn(move |request| {
        let control = Arc::clone(&control);
        async move { Ok::<_, Infallible>(handle_request(request, &*control).await) }
    });
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        log::debug!("API connection ended with an error: {e}");
    }
}

/// The outcome of reading a request body.
enum BodyRead {
    /// The whole body.
    Complete(Bytes),
    /// Longer than [`MAX_BODY_BYTES`]; `drained` tells whether it was read to its end.
    TooLarge { drained: bool },
    /// The body could not be read.
    Failed(hyper::Error),
}

/// Reads a body of at most [`MAX_BODY_BYTES`], discarding the rest of a longer one up to
/// [`MAX_DISCARDED_BYTES`].
async fn read_body(mut body: Incoming, declared_length: Option<u64>) -> BodyRead {
    let limit = MAX_BODY_BYTES as u64;
    if declared_length.is_some_and(|length| length > MAX_DISCARDED_BYTES as u64) {
        return BodyRead::TooLarge { drained: false };
    }
    let mut collected = Vec::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return BodyRead::Failed(e),
        };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len() as u64);
            if total > MAX_DISCARDED_BYTES as u64 {
                return BodyRead::TooLarge { drained: false };
            }
            if total <= limit {
                collected.extend_from_slice(&data);
            }
        }
    }
    if total > limit || declared_length.is_some_and(|length| length > limit) {
        BodyRead::TooLarge { drained: true }
    } else {
        BodyRead::Complete(Bytes::from(collected))
    }
}

/// Handles one request.
async fn handle_request(
    request: Request<Incoming>,
    control: &dyn VmmControl,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let declared_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = match read_body(body, declared_length).await {
        BodyRead::Complete(body) => body,
        BodyRead::TooLarge { drained } => {
            let error = ApiError {
                status: 413,
                message: format!("request body too large: the limit is {MAX_BODY_BYTES} bytes"),
            };
            return to_http(ApiResponse::error(&error), !drained);
        }
        BodyRead::Failed(e) => {
            let error = ApiError::bad_request(format!("could not read the request body: {e}"));
            return to_http(ApiResponse::error(&error), true);
        }
    };

    let api_request = ApiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_type: parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        body: &body,
    };
    let response = catch_unwind(AssertUnwindSafe(|| routes::dispatch(control, &api_request)))
        .unwrap_or_else(|_| {
            log::error!(
                "the VMM panicked while handling {} {}",
                api_request.method,
                api_request.path
            );
            ApiResponse::error(&ApiError::internal(format!(
                "the VMM failed unexpectedly while handling {} {}",
                api_request.method, api_request.path
            )))
        });
    log::debug!(
        "API {} {} -> {}",
        api_request.method,
        api_request.path,
        response.status
    );
    to_http(response, false)
}

/// Frames an [`ApiResponse`] as an HTTP response; `close` asks for the connection to end.
fn to_http(response: ApiResponse, close: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let has_body = response.body.is_some();
    let mut http = Response::new(Full::new(Bytes::from(response.body.unwrap_or_default())));
    *http.status_mut() = status;
    let headers = http.headers_mut();
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(allow) = response
        .allow
        .and_then(|allow| HeaderValue::from_str(&allow).ok())
    {
        headers.insert(ALLOW, allow);
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    http
}
