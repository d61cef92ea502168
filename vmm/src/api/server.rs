//! HTTP/1.1 server on a Unix socket.

use std::path::Path;
use std::sync::Arc;

use super::VmmControl;

/// Placeholder error.
#[derive(Debug, thiserror::Error)]
#[error("API server unavailable")]
pub struct ApiServerError;

/// Placeholder server.
pub struct ApiServer;

impl ApiServer {
    /// Stops the server.
    pub fn shutdown(self) {}
}

/// Placeholder.
pub fn start(_path: &Path, _control: Arc<dyn VmmControl>) -> Result<ApiServer, ApiServerError> {
    Err(ApiServerError)
}
