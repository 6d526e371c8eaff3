//! The Kubernetes Container Runtime Interface (CRI) v1, as kubelet speaks it to containerd:
//! the generated `RuntimeService` and `ImageService` clients and one way to reach a runtime's
//! Unix socket. `proto/api.proto` is k8s.io/cri-api's `pkg/apis/runtime/v1/api.proto`
//! (Apache-2.0, The Kubernetes Authors), unmodified.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
pub use tonic::transport::Channel;
use tonic::transport::{Endpoint, Uri};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub use v1::image_service_client::ImageServiceClient;
pub use v1::runtime_service_client::RuntimeServiceClient;

/// A channel to the CRI server listening on the Unix socket `socket` (as kubelet's
/// `--container-runtime-endpoint unix://...`).
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by tonic but unused: every connection goes to the socket.
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}
