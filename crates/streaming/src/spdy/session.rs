//! Server side of a SPDY/3.1 session over any byte transport.
//!
//! The client opens streams (SYN_STREAM); the session replies at once (SYN_REPLY, as the kubelet
//! does) and hands each one to the application as an [`IncomingStream`]. Pings the client starts
//! are echoed. Flow control follows SPDY/3.1: we grant the peer more window (WINDOW_UPDATE, per
//! stream and per session) as the application consumes data, and we respect the peer's windows when
//! sending, **once the peer shows that it does flow control** (sends a WINDOW_UPDATE or
//! SETTINGS_INITIAL_WINDOW_SIZE). kubectl's SPDY library (moby/spdystream) never sends either and
//! ignores ours, like the kubelet's own server; enforcing a 64 KiB window on it would stall every
//! transfer, so until then windows are only accounted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::{
    Decoder, Encoder, FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, Headers, INITIAL_WINDOW, MAX_WINDOW,
    SETTINGS_INITIAL_WINDOW_SIZE, rst,
};
use crate::StreamError;

/// Largest data frame payload we send.
pub const MAX_DATA_CHUNK: usize = 32 * 1024;
/// We send a WINDOW_UPDATE once this many bytes were consumed since the last one.
const WINDOW_UPDATE_THRESHOLD: u64 = (INITIAL_WINDOW as u64) / 2;
/// Data chunks buffered per stream before the session reader waits for the application.
const STREAM_QUEUE: usize = 32;
/// Outgoing data frames buffered before writers wait for the transport.
const DATA_QUEUE: usize = 64;

/// A stream the client opened, already replied to.
pub struct IncomingStream {
    /// Stream id.
    pub id: u32,
    /// The SYN_STREAM headers (lowercase names).
    pub headers: Headers,
    /// Receives the client's data.
    pub reader: StreamReader,
    /// Sends data to the client.
    pub writer: StreamWriter,
}

impl IncomingStream {
    /// First value of a SYN_STREAM header.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header(&self.headers, name)
    }
}

enum Out {
    Frame(Frame),
    Close,
}

struct Entry {
    send_window: i64,
    data_tx: Option<mpsc::Sender<Bytes>>,
    local_fin: bool,
    remote_fin: bool,
}

struct State {
    streams: HashMap<u32, Entry>,
    closed: bool,
    peer_flow_control: bool,
    session_send_window: i64,
    initial_send_window: i64,
    session_unacked: u64,
    last_stream_id: u32,
}

struct Shared {
    state: Mutex<State>,
    ctrl: mpsc::UnboundedSender<Out>,
    data: mpsc::Sender<Out>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // more than losing the session, so keep going with the inner value.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn control(&self, f: Frame) {
        let _ = self.ctrl.send(Out::Frame(f));
    }

    /// Credits consumed bytes to the session window, sending WINDOW_UPDATE when due.
    fn credit_session(&self, n: usize) {
        let delta = {
            let mut st = self.lock();
            st.session_unacked += n as u64;
            if st.session_unacked >= WINDOW_UPDATE_THRESHOLD && !st.closed {
                std::mem::take(&mut st.session_unacked)
            } else {
                0
            }
        };
        if delta > 0 {
            self.control(Frame::WindowUpdate {
                stream_id: 0,
                delta: delta as u32,
            });
        }
    }

    fn close_all(&self) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.streams.clear();
        }
        self.bump();
        let _ = self.ctrl.send(Out::Close);
    }

    fn remove_if_done(st: &mut State, id: u32) {
        if st
            .streams
            .get(&id)
            .is_some_and(|e| e.local_fin && e.remote_fin)
        {
            st.streams.remove(&id);
        }
    }
}

/// Handle on a running session.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Starts serving a SPDY/3.1 session on `io` (spawns the reader and writer tasks; needs a Tokio
    /// runtime). New client streams arrive on the returned receiver, which ends with the session.
    pub fn start<T>(io: T) -> Result<(Session, mpsc::Receiver<IncomingStream>), StreamError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let encoder = Encoder::new()?;
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                streams: HashMap::new(),
                closed: false,
                peer_flow_control: false,
                session_send_window: INITIAL_WINDOW,
                initial_send_window: INITIAL_WINDOW,
                session_unacked: 0,
                last_stream_id: 0,
            }),
            ctrl: ctrl_tx,
            data: data_tx,
            changed,
        });
        let (new_tx, new_rx) = mpsc::channel(64);
        let (r, w) = tokio::io::split(io);
        let s2 = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = write_loop(w, encoder, ctrl_rx, data_rx).await {
                tracing::debug!("spdy session writer ended: {e}");
            }
            s2.close_all();
        });
        let s3 = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = read_loop(r, &s3, new_tx).await {
                tracing::debug!("spdy session reader ended: {e}");
            }
            s3.close_all();
        });
        Ok((Session { shared }, new_rx))
    }

    /// Sends GOAWAY after everything queued so far, then closes our sending side of the transport.
    pub async fn shutdown(&self) {
        let last = self.shared.lock().last_stream_id;
        let _ = self
            .shared
            .data
            .send(Out::Frame(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            }))
            .await;
        let _ = self.shared.data.send(Out::Close).await;
    }

    /// Waits until the session has ended (transport closed or failed).
    pub async fn closed(&self) {
        let mut rx = self.shared.changed.subscribe();
        loop {
            if self.shared.lock().closed {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the peer has shown it does SPDY/3.1 flow control (so its windows are enforced).
    pub fn peer_flow_control(&self) -> bool {
        self.shared.lock().peer_flow_control
    }
}

/// Receives one stream's data from the client.
pub struct StreamReader {
    id: u32,
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    unacked: u64,
}

impl StreamReader {
    /// Next chunk of data; `None` once the client finished (FIN) or reset the stream, or the
    /// session ended. Grants the client window for what was consumed.
    pub async fn read(&mut self) -> Option<Bytes> {
        let b = self.rx.recv().await?;
        self.unacked += b.len() as u64;
        if self.unacked >= WINDOW_UPDATE_THRESHOLD {
            let open = self
                .shared
                .lock()
                .streams
                .get(&self.id)
                .is_some_and(|e| !e.remote_fin);
            if open {
                self.shared.control(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta: std::mem::take(&mut self.unacked) as u32,
                });
            }
        }
        self.shared.credit_session(b.len());
        Some(b)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        // Data still queued was received: give its window back.
        let mut n = 0;
        while let Ok(b) = self.rx.try_recv() {
            n += b.len();
        }
        if n > 0 {
            self.shared.credit_session(n);
        }
    }
}

/// Sends data on one stream to the client.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
}

impl StreamWriter {
    /// Stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    async fn reserve(&self, want: usize) -> Result<usize, StreamError> {
        let mut rx = self.shared.changed.subscribe();
        loop {
            {
                let mut guard = self.shared.lock();
                let st = &mut *guard;
                if st.closed {
                    return Err(StreamError::SessionClosed);
                }
                let Some(e) = st.streams.get_mut(&self.id) else {
                    return Err(StreamError::Reset(self.id));
                };
                if e.local_fin {
                    return Err(StreamError::Protocol(format!(
                        "write on stream {} after it was finished",
                        self.id
                    )));
                }
                let mut n = want.min(MAX_DATA_CHUNK);
                if st.peer_flow_control {
                    let avail = e.send_window.min(st.session_send_window);
                    n = if avail <= 0 { 0 } else { n.min(avail as usize) };
                }
                if n > 0 {
                    e.send_window -= n as i64;
                    st.session_send_window -= n as i64;
                    return Ok(n);
                }
            }
            rx.changed().await.map_err(|_| StreamError::SessionClosed)?;
        }
    }

    /// Sends `data`, split into frames and waiting for the peer's flow-control window as needed.
    pub async fn write(&self, data: &[u8]) -> Result<(), StreamError> {
        let mut off = 0;
        while off < data.len() {
            let n = self.reserve(data.len() - off).await?;
            self.shared
                .data
                .send(Out::Frame(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: Bytes::copy_from_slice(&data[off..off + n]),
                }))
                .await
                .map_err(|_| StreamError::SessionClosed)?;
            off += n;
        }
        Ok(())
    }

    /// Half-closes the stream (empty DATA frame with FIN): we send nothing more.
    pub async fn finish(&self) -> Result<(), StreamError> {
        {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(StreamError::SessionClosed);
            }
            match st.streams.get_mut(&self.id) {
                Some(e) if !e.local_fin => e.local_fin = true,
                Some(_) => return Ok(()),
                None => return Err(StreamError::Reset(self.id)),
            }
            Shared::remove_if_done(&mut st, self.id);
        }
        self.shared
            .data
            .send(Out::Frame(Frame::Data {
                stream_id: self.id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            }))
            .await
            .map_err(|_| StreamError::SessionClosed)
    }

    /// Aborts the stream with RST_STREAM `status` (one of [`rst`]).
    pub fn reset(&self, status: u32) {
        let existed = self.shared.lock().streams.remove(&self.id).is_some();
        if existed {
            self.shared.control(Frame::RstStream {
                stream_id: self.id,
                status,
            });
            self.shared.bump();
        }
    }
}

async fn write_loop<W: AsyncWrite>(
    w: W,
    mut encoder: Encoder,
    mut ctrl: mpsc::UnboundedReceiver<Out>,
    mut data: mpsc::Receiver<Out>,
) -> Result<(), StreamError> {
    tokio::pin!(w);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: loop {
        let first = tokio::select! {
            biased;
            Some(c) = ctrl.recv() => c,
            Some(d) = data.recv() => d,
            else => break,
        };
        let mut item = Some(first);
        while let Some(out) = item.take() {
            match out {
                Out::Close => {
                    w.write_all(&buf).await?;
                    break 'outer;
                }
                Out::Frame(f) => encoder.encode(&f, &mut buf)?,
            }
            if buf.len() < 64 * 1024 {
                item = ctrl.try_recv().ok().or_else(|| data.try_recv().ok());
            }
        }
        w.write_all(&buf).await?;
        w.flush().await?;
        buf.clear();
    }
    w.flush().await?;
    let _ = w.shutdown().await;
    Ok(())
}

async fn read_loop<R: AsyncRead>(
    r: R,
    shared: &Arc<Shared>,
    new_tx: mpsc::Sender<IncomingStream>,
) -> Result<(), StreamError> {
    tokio::pin!(r);
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            handle_frame(frame, shared, &new_tx).await;
        }
        buf.reserve(32 * 1024);
        if r.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn handle_frame(frame: Frame, shared: &Arc<Shared>, new_tx: &mpsc::Sender<IncomingStream>) {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let (tx, rx) = mpsc::channel(STREAM_QUEUE);
            {
                let mut st = shared.lock();
                if stream_id == 0 || stream_id % 2 == 0 || stream_id <= st.last_stream_id {
                    drop(st);
                    shared.control(Frame::RstStream {
                        stream_id,
                        status: rst::PROTOCOL_ERROR,
                    });
                    return;
                }
                st.last_stream_id = stream_id;
                let remote_fin = flags & FLAG_FIN != 0;
                let entry = Entry {
                    send_window: st.initial_send_window,
                    data_tx: (!remote_fin).then_some(tx),
                    local_fin: flags & FLAG_UNIDIRECTIONAL != 0,
                    remote_fin,
                };
                st.streams.insert(stream_id, entry);
            }
            shared.control(Frame::SynReply {
                stream_id,
                flags: 0,
                headers: Vec::new(),
            });
            let incoming = IncomingStream {
                id: stream_id,
                headers,
                reader: StreamReader {
                    id: stream_id,
                    rx,
                    shared: shared.clone(),
                    unacked: 0,
                },
                writer: StreamWriter {
                    id: stream_id,
                    shared: shared.clone(),
                },
            };
            if new_tx.send(incoming).await.is_err() {
                shared.lock().streams.remove(&stream_id);
                shared.control(Frame::RstStream {
                    stream_id,
                    status: rst::REFUSED_STREAM,
                });
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let len = data.len();
            let tx = shared
                .lock()
                .streams
                .get(&stream_id)
                .and_then(|e| e.data_tx.clone());
            if len > 0 {
                let delivered = match tx {
                    Some(tx) => tx.send(data).await.is_ok(),
                    None => false,
                };
                if !delivered {
                    // Nobody will consume it: give the window back right away.
                    shared.credit_session(len);
                }
            }
            if flags & FLAG_FIN != 0 {
                remote_finish(shared, stream_id);
            }
        }
        Frame::Headers {
            stream_id, flags, ..
        } => {
            if flags & FLAG_FIN != 0 {
                remote_finish(shared, stream_id);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            shared.lock().streams.remove(&stream_id);
            shared.bump();
        }
        Frame::Settings { entries, .. } => {
            let mut changed = false;
            {
                let mut st = shared.lock();
                for e in entries {
                    if e.id == SETTINGS_INITIAL_WINDOW_SIZE {
                        let value = i64::from(e.value).min(MAX_WINDOW);
                        let delta = value - st.initial_send_window;
                        st.initial_send_window = value;
                        for s in st.streams.values_mut() {
                            s.send_window += delta;
                        }
                        st.peer_flow_control = true;
                        changed = true;
                    }
                }
            }
            if changed {
                shared.bump();
            }
        }
        Frame::Ping { id } => {
            // Client pings are odd; even ids would be answers to ours (we send none).
            if id % 2 == 1 {
                shared.control(Frame::Ping { id });
            }
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut overflow = false;
            {
                let mut st = shared.lock();
                st.peer_flow_control = true;
                if stream_id == 0 {
                    st.session_send_window =
                        (st.session_send_window + i64::from(delta)).min(MAX_WINDOW);
                } else if let Some(e) = st.streams.get_mut(&stream_id) {
                    e.send_window += i64::from(delta);
                    if e.send_window > MAX_WINDOW {
                        overflow = true;
                        st.streams.remove(&stream_id);
                    }
                }
            }
            if overflow {
                shared.control(Frame::RstStream {
                    stream_id,
                    status: rst::FLOW_CONTROL_ERROR,
                });
            }
            shared.bump();
        }
        Frame::GoAway { .. } | Frame::SynReply { .. } | Frame::Unknown { .. } => {}
    }
}

fn remote_finish(shared: &Arc<Shared>, stream_id: u32) {
    let mut st = shared.lock();
    if let Some(e) = st.streams.get_mut(&stream_id) {
        e.remote_fin = true;
        e.data_tx = None;
    }
    Shared::remove_if_done(&mut st, stream_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::{Setting, header};
    use std::time::Duration;
    use tokio::io::DuplexStream;

    struct Client {
        enc: Encoder,
        dec: Decoder,
        io: DuplexStream,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, f: Frame) {
            let mut b = BytesMut::new();
            self.enc.encode(&f, &mut b).unwrap();
            self.io.write_all(&b).await.unwrap();
        }

        async fn recv(&mut self) -> Frame {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return f;
                }
                let n =
                    tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                        .await
                        .expect("no frame from the session within 10s")
                        .unwrap();
                assert!(n > 0, "session closed the transport");
            }
        }

        async fn open(&mut self, id: u32, flags: u8) {
            self.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags,
                headers: vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "80".into()),
                ],
            })
            .await;
        }

        async fn data(&mut self, id: u32, flags: u8, data: &[u8]) {
            self.send(Frame::Data {
                stream_id: id,
                flags,
                data: Bytes::copy_from_slice(data),
            })
            .await;
        }
    }

    fn start() -> (Session, mpsc::Receiver<IncomingStream>, Client) {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let (session, incoming) = Session::start(server_io).unwrap();
        let client = Client {
            enc: Encoder::new().unwrap(),
            dec: Decoder::new(),
            io: client_io,
            buf: BytesMut::new(),
        };
        (session, incoming, client)
    }

    #[tokio::test]
    async fn stream_is_replied_and_data_flows_both_ways() {
        let (_s, mut incoming, mut c) = start();
        c.open(1, 0).await;
        assert_eq!(
            c.recv().await,
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![]
            }
        );
        let mut st = incoming.recv().await.unwrap();
        assert_eq!(st.id, 1);
        assert_eq!(header(&st.headers, "port"), Some("80"));
        c.data(1, 0, b"abc").await;
        c.data(1, FLAG_FIN, b"def").await;
        assert_eq!(&st.reader.read().await.unwrap()[..], b"abc");
        assert_eq!(&st.reader.read().await.unwrap()[..], b"def");
        assert_eq!(st.reader.read().await, None);
        st.writer.write(b"xyz").await.unwrap();
        st.writer.finish().await.unwrap();
        assert_eq!(
            c.recv().await,
            Frame::Data {
                stream_id: 1,
                flags: 0,
                data: Bytes::from_static(b"xyz")
            }
        );
        assert_eq!(
            c.recv().await,
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::new()
            }
        );
        // Both sides finished: the stream is gone.
        assert!(matches!(
            st.writer.write(b"more").await,
            Err(StreamError::Reset(1))
        ));
    }

    #[tokio::test]
    async fn client_pings_are_echoed_and_bad_ids_refused() {
        let (_s, _incoming, mut c) = start();
        c.send(Frame::Ping { id: 1 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 1 });
        c.send(Frame::Ping { id: 2 }).await; // an answer to a ping we never sent: ignored
        c.send(Frame::Ping { id: 3 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 3 });
        c.open(2, 0).await; // even ids belong to the server
        assert_eq!(
            c.recv().await,
            Frame::RstStream {
                stream_id: 2,
                status: rst::PROTOCOL_ERROR
            }
        );
    }

    #[tokio::test]
    async fn window_updates_are_sent_as_data_is_consumed() {
        let (_s, mut incoming, mut c) = start();
        c.open(1, 0).await;
        c.recv().await; // SYN_REPLY
        let mut st = incoming.recv().await.unwrap();
        let chunk = vec![7u8; 16 * 1024];
        for _ in 0..4 {
            c.data(1, 0, &chunk).await;
        }
        let mut got = 0;
        while got < 4 * chunk.len() {
            got += st.reader.read().await.unwrap().len();
        }
        let (mut stream_credit, mut session_credit) = (0u32, 0u32);
        while stream_credit < 65536 || session_credit < 65536 {
            match c.recv().await {
                Frame::WindowUpdate {
                    stream_id: 1,
                    delta,
                } => stream_credit += delta,
                Frame::WindowUpdate {
                    stream_id: 0,
                    delta,
                } => session_credit += delta,
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!((stream_credit, session_credit), (65536, 65536));
    }

    #[tokio::test]
    async fn peer_windows_are_respected_once_it_does_flow_control() {
        let (s, mut incoming, mut c) = start();
        c.send(Frame::Settings {
            flags: 0,
            entries: vec![Setting {
                flags: 0,
                id: SETTINGS_INITIAL_WINDOW_SIZE,
                value: 1000,
            }],
        })
        .await;
        c.open(1, 0).await;
        c.recv().await; // SYN_REPLY
        let st = incoming.recv().await.unwrap();
        assert!(s.peer_flow_control());
        let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let w = st.writer.clone();
        let p2 = payload.clone();
        let writer = tokio::spawn(async move { w.write(&p2).await });
        let mut received = Vec::new();
        while received.len() < 1000 {
            match c.recv().await {
                Frame::Data {
                    stream_id: 1, data, ..
                } => received.extend_from_slice(&data),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(
            received.len(),
            1000,
            "sent past the 1000-byte stream window"
        );
        // Nothing more may arrive until we grant window: a ping round trip proves the pipe is idle.
        c.send(Frame::Ping { id: 5 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 5 });
        assert!(!writer.is_finished());
        c.send(Frame::WindowUpdate {
            stream_id: 1,
            delta: 4000,
        })
        .await;
        while received.len() < 5000 {
            match c.recv().await {
                Frame::Data {
                    stream_id: 1, data, ..
                } => received.extend_from_slice(&data),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(received, payload);
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn session_window_limits_all_streams() {
        let (_s, mut incoming, mut c) = start();
        // A session WINDOW_UPDATE marks the peer as flow-controlling; the session window is then
        // 64 KiB + 10 bytes while the stream windows stay at 64 KiB.
        c.send(Frame::WindowUpdate {
            stream_id: 0,
            delta: 10,
        })
        .await;
        c.open(1, 0).await;
        c.open(3, 0).await;
        c.recv().await;
        c.recv().await;
        let a = incoming.recv().await.unwrap();
        let b = incoming.recv().await.unwrap();
        let big = vec![1u8; 40_000];
        let (wa, wb) = (a.writer.clone(), b.writer.clone());
        let (ba, bb) = (big.clone(), big.clone());
        let ta = tokio::spawn(async move { wa.write(&ba).await });
        let tb = tokio::spawn(async move { wb.write(&bb).await });
        let mut total = 0usize;
        while total < 65_546 {
            match c.recv().await {
                Frame::Data { data, .. } => total += data.len(),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(total, 65_546);
        c.send(Frame::Ping { id: 7 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 7 });
        c.send(Frame::WindowUpdate {
            stream_id: 0,
            delta: 80_000,
        })
        .await;
        while total < 80_000 {
            match c.recv().await {
                Frame::Data { data, .. } => total += data.len(),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        ta.await.unwrap().unwrap();
        tb.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn without_flow_control_signals_nothing_stalls() {
        // kubectl (spdystream) never sends WINDOW_UPDATE: we must not stop at 64 KiB.
        let (s, mut incoming, mut c) = start();
        c.open(1, 0).await;
        c.recv().await;
        let st = incoming.recv().await.unwrap();
        let big = vec![9u8; 300_000];
        let w = st.writer.clone();
        let t = tokio::spawn(async move { w.write(&big).await });
        let mut total = 0;
        while total < 300_000 {
            match c.recv().await {
                Frame::Data { data, .. } => total += data.len(),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        t.await.unwrap().unwrap();
        assert!(!s.peer_flow_control());
    }

    #[tokio::test]
    async fn reset_ends_both_directions() {
        let (_s, mut incoming, mut c) = start();
        c.open(1, 0).await;
        c.recv().await;
        let mut st = incoming.recv().await.unwrap();
        c.send(Frame::RstStream {
            stream_id: 1,
            status: rst::CANCEL,
        })
        .await;
        assert_eq!(st.reader.read().await, None);
        assert!(matches!(
            st.writer.write(b"x").await,
            Err(StreamError::Reset(1))
        ));
        // Data for a stream that no longer exists is dropped without harm.
        c.data(1, 0, b"late").await;
        c.send(Frame::Ping { id: 9 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 9 });
    }

    #[tokio::test]
    async fn transport_eof_ends_the_session() {
        let (s, mut incoming, mut c) = start();
        c.open(1, FLAG_FIN).await;
        c.recv().await;
        let mut st = incoming.recv().await.unwrap();
        assert_eq!(
            st.reader.read().await,
            None,
            "SYN_STREAM with FIN has no data"
        );
        c.send(Frame::GoAway {
            last_good_stream_id: 0,
            status: 0,
        })
        .await;
        drop(c);
        assert!(incoming.recv().await.is_none());
        tokio::time::timeout(Duration::from_secs(10), s.closed())
            .await
            .unwrap();
        assert!(matches!(
            st.writer.write(b"x").await,
            Err(StreamError::SessionClosed)
        ));
    }

    #[tokio::test]
    async fn shutdown_sends_goaway_and_closes() {
        let (s, mut incoming, mut c) = start();
        c.open(1, 0).await;
        c.recv().await;
        let _st = incoming.recv().await.unwrap();
        s.shutdown().await;
        assert_eq!(
            c.recv().await,
            Frame::GoAway {
                last_good_stream_id: 1,
                status: 0
            }
        );
        let mut rest = Vec::new();
        c.io.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
