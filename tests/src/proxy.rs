//! A TCP proxy that can cut every connection through it, to inject network
//! faults between the replicas and PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultyProxy {
    pub addr: SocketAddr,
    /// Bumped on every cut; connections made before a cut end at once.
    generation: Arc<watch::Sender<u64>>,
    cuts: u64,
}

impl FaultyProxy {
    pub async fn start(upstream: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().expect("a proxy address");
        let (generation, _) = watch::channel(0u64);
        let generation = Arc::new(generation);
        let accept_generation = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = accept_generation.subscribe();
                tokio::spawn(pipe(client, upstream, cut));
            }
        });
        FaultyProxy {
            addr,
            generation,
            cuts: 0,
        }
    }

    /// Drops every open connection; new ones are accepted again at once.
    pub fn cut_all(&mut self) {
        self.cuts += 1;
        self.generation.send_replace(self.cuts);
    }

    pub fn cuts(&self) -> u64 {
        self.cuts
    }
}

async fn pipe(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}
