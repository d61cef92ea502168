//! Routing of API requests.
