use std::os::fd::{AsRawFd, OwnedFd};

use super::buffer::chunk_to_fill;
use super::reads::LINES_BATCH;
use super::outputs::Filled;
use super::state::ACC_KEEP;
use super::*;
use crate::core::os::sys;

/// Whether every page under `p[..len]` is resident (mincore).
fn resident(p: *const u8, len: usize) -> bool {
    let page = 4096;
    let start = p as usize / page * page;
    let pages = (p as usize + len - start).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a page-aligned range of this process's memory and a
    // vector of one byte per page.
    assert_eq!(unsafe { libc::mincore(start as *mut libc::c_void, pages * page, vec.as_mut_ptr()) }, 0);
    vec.iter().all(|v| v & 1 == 1)
}

#[test]
fn a_big_buffer_is_faulted_in_before_the_pipe_fills_it() {
    // A fresh mapping, half of it written: the other half is not resident.
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    buf.resize(4 << 20, 1);
    let next = buf.spare_capacity_mut().as_ptr().cast::<u8>();
    assert!(!resident(next, MAX_CHUNK), "a fresh mapping is not resident yet");
    let chunk = chunk_to_fill(&mut buf).unwrap();
    assert_eq!(chunk, next.cast_mut());
    assert!(resident(chunk, MAX_CHUNK));
}

fn pipe_outputs(limit: usize) -> (SharedOutputs, OwnedFd) {
    let (r, w) = sys::pipe().unwrap();
    sys::set_nonblocking(r.as_raw_fd()).unwrap();
    sys::set_nonblocking(w.as_raw_fd()).unwrap();
    (Outputs::new([Some(r), None], limit), w)
}

#[test]
fn a_buffered_line_is_taken_without_reading_the_pipe() {
    let (outs, w) = pipe_outputs(1 << 20);
    write_all_blocking(&w, b"one\ntwo\nthr");
    // Nothing was read from the pipe yet: no line is buffered, and
    // asking does not read it.
    assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
    assert!(outs.buffered_line(0, false, |l| l.to_vec()).is_none());
    // A line read pulls the pipe; the next line is then buffered.
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"one"));
    assert_eq!(outs.buffered_line(0, true, |l| l.to_vec()).as_deref(), Some(&b"two\n"[..]));
    // Half a line is not a line: it stays for read_line, which reads on.
    assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
    write_all_blocking(&w, b"ee\nfour\n");
    drop(w);
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"three"));
    assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()).as_deref(), Some(&b"four"[..]));
    // The end is reported by read_line alone.
    assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Eof)));
}

#[test]
fn a_closed_stream_has_no_buffered_lines() {
    let (outs, w) = pipe_outputs(1 << 20);
    write_all_blocking(&w, b"a\nb\n");
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"a"));
    outs.close(0);
    assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
}

#[test]
fn lines_come_in_batches_that_stay_in_cache() {
    let (outs, w) = pipe_outputs(1 << 20);
    let text: Vec<u8> = (0..20000).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    let long = vec![b'y'; 3 * LINES_BATCH];
    let writer = std::thread::spawn(move || {
        write_all_blocking(&w, &text);
        write_all_blocking(&w, &long);
        write_all_blocking(&w, b"\nlast");
    });
    let mut lines = Vec::new();
    let mut last = None;
    loop {
        match outs.read_lines_block(0, |b| b.to_vec()).unwrap() {
            (Got::Data(b), true) => last = Some(b),
            (Got::Data(b), false) => {
                // A batch is at most LINES_BATCH bytes, unless it is one long line.
                assert!(b.len() <= LINES_BATCH || !b[..b.len() - 1].contains(&b'\n'), "{}", b.len());
                assert_eq!(b.last(), Some(&b'\n'));
                lines.extend(b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| l.to_vec()));
            }
            (Got::WouldBlock, _) => std::thread::sleep(std::time::Duration::from_millis(1)),
            (Got::Eof, _) => break,
            (Got::Dropped(_), _) => panic!("dropped"),
        }
    }
    writer.join().unwrap();
    assert_eq!(lines.len(), 20001);
    assert_eq!(lines[19999], b"19999");
    assert_eq!(lines[20000].len(), 3 * LINES_BATCH);
    assert_eq!(last.as_deref(), Some(&b"last"[..]));
}

#[test]
fn a_stream_read_whole_is_never_read_ahead_and_comes_out_moved() {
    let (outs, w) = pipe_outputs(10);
    outs.keep_whole(0, None);
    outs.read_ahead(0);
    write_all(&w, &[b'a'; 5000]);
    outs.fill(0);
    assert_eq!(outs.buffered(), 0, "not read ahead, so nothing dropped");
    assert!(matches!(outs.read_whole(0).unwrap(), Got::WouldBlock));
    write_all(&w, b"end");
    drop(w);
    match outs.read_whole(0).unwrap() {
        Got::Data(v) => assert_eq!(v.len(), 5003),
        _ => panic!("expected the whole output"),
    }
    assert!(outs.take_partial(0).is_empty(), "moved out, nothing kept");
}

#[test]
fn a_capped_whole_read_keeps_its_cap_and_reads_the_rest_to_the_end() {
    let (outs, w) = pipe_outputs(10);
    outs.keep_whole(0, Some(1000));
    let writer = std::thread::spawn(move || write_all_blocking(&w, &vec![b'y'; 4 * MAX_CHUNK + 7]));
    let kept = loop {
        match outs.read_whole(0).unwrap() {
            Got::Data(all) => break all,
            Got::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => panic!("unexpected"),
        }
    };
    writer.join().unwrap();
    assert_eq!(kept.len(), 1000);
    assert!(outs.truncated(0));
    assert!(outs.streams[0].borrow().as_ref().unwrap().acc.capacity() <= ACC_KEEP);
}

#[test]
fn a_whole_read_gives_its_big_buffer_back() {
    let (outs, w) = pipe_outputs(1 << 20);
    let writer = std::thread::spawn(move || {
        let block = vec![b'x'; 16 * MAX_CHUNK];
        write_all_blocking(&w, &block);
    });
    let total = loop {
        match outs.read_whole(0).unwrap() {
            Got::Data(all) => break all.len(),
            Got::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => panic!("unexpected"),
        }
    };
    writer.join().unwrap();
    assert_eq!(total, 16 * MAX_CHUNK);
    let cap = outs.streams[0].borrow().as_ref().unwrap().acc.capacity();
    assert!(cap <= ACC_KEEP, "kept {cap} bytes");
}

fn write_all_blocking(fd: &OwnedFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        match sys::write_nosigpipe(fd.as_raw_fd(), &data[off..]).unwrap() {
            Some(n) => off += n,
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

fn write_all(fd: &OwnedFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        if let Some(n) = sys::write_nosigpipe(fd.as_raw_fd(), &data[off..]).unwrap() {
            off += n;
        } else {
            break;
        }
    }
}

#[test]
fn read_ahead_keeps_output_within_the_limit_and_reports_the_drop() {
    let (outs, w) = pipe_outputs(1000);
    outs.read_ahead(0);
    write_all(&w, &[b'a'; 800]);
    outs.fill(0);
    write_all(&w, &[b'b'; 800]);
    outs.fill(0);
    assert_eq!(outs.buffered(), 1000);
    let mut buf = vec![0; MAX_CHUNK];
    assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Dropped(600))));
    match outs.read(0, &mut buf) {
        Ok(StreamRead::Data(n)) => {
            assert_eq!(n, 1000);
            assert_eq!(&buf[..200], &[b'a'; 200][..]);
            assert_eq!(&buf[200..1000], &[b'b'; 800][..]);
        }
        _ => panic!("expected data"),
    }
    assert_eq!(outs.buffered(), 0);
    drop(w);
    assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Eof)));
}

#[test]
fn direct_streams_are_not_taken_in_and_discarded_ones_are_thrown_away() {
    let (outs, w) = pipe_outputs(1 << 20);
    write_all(&w, b"hello");
    assert_eq!(outs.fill(0), Filled::default());
    assert_eq!(outs.buffered(), 0);
    outs.discard(0);
    drop(w);
    let f = outs.fill(0);
    assert!(f.finished || outs.buffered() == 0);
}

#[test]
fn a_blocked_read_turns_on_read_ahead_for_the_other_stream() {
    let (r1, w1) = sys::pipe().unwrap();
    let (r2, w2) = sys::pipe().unwrap();
    for fd in [&r1, &r2] {
        sys::set_nonblocking(fd.as_raw_fd()).unwrap();
    }
    let outs = Outputs::new([Some(r1), Some(r2)], 1 << 20);
    write_all(&w2, b"on stderr");
    let mut buf = vec![0; 64];
    assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::WouldBlock)));
    assert_eq!(outs.buffered(), 9, "stderr was taken in while stdout blocked");
    drop((w1, w2));
}

#[test]
fn lines_come_whole_across_reads_and_the_last_one_without_newline() {
    let (outs, w) = pipe_outputs(1 << 20);
    write_all(&w, b"one\ntw");
    let mut got = Vec::new();
    match outs.read_lines_block(0, |b| b.to_vec()).unwrap() {
        (Got::Data(b), false) => got.push(b),
        _ => panic!("expected one line"),
    }
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()).unwrap(), Got::WouldBlock));
    write_all(&w, b"o\nthree\nlast");
    drop(w);
    let mut all = Vec::new();
    loop {
        match outs.read_line(0, true, |l| l.to_vec()).unwrap() {
            Got::Data(l) => all.push(l),
            Got::Eof => break,
            _ => panic!("unexpected"),
        }
    }
    assert_eq!(got, vec![b"one\n".to_vec()]);
    assert_eq!(all, vec![b"two\n".to_vec(), b"three\n".to_vec(), b"last".to_vec()]);
}

#[test]
fn a_whole_read_keeps_what_arrived_until_the_end_and_chunks_see_line_leftovers() {
    let (outs, w) = pipe_outputs(1 << 20);
    write_all(&w, b"a\nbc");
    assert!(matches!(outs.read_line(0, false, |l| l.to_vec()).unwrap(), Got::Data(ref l) if l == b"a"));
    let mut buf = vec![0; 64];
    assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Data(2))));
    assert_eq!(&buf[..2], b"bc");
    write_all(&w, b"xyz");
    assert!(matches!(outs.read_whole(0).unwrap(), Got::WouldBlock));
    outs.unread(0, b">").unwrap();
    write_all(&w, b"!");
    drop(w);
    assert!(matches!(outs.read_whole(0).unwrap(), Got::Data(ref b) if b == b">xyz!"));
}

#[test]
fn a_bulk_stream_gives_every_byte_in_order_to_chunk_line_and_read_ahead_reads() {
    // A writer thread fills the pipe; the reader mixes chunk reads of
    // every size (whole pipes' worth once the pipe is grown), line reads
    // and a read-ahead (the program waiting on something else).
    let (outs, w) = pipe_outputs(1 << 30);
    let data: Vec<u8> = (0..8_000_000u32)
        .map(|i| if i % 1000 == 999 { b'\n' } else { (i % 251) as u8 })
        .collect();
    let expected = data.clone();
    let writer = std::thread::spawn(move || write_all_blocking(&w, &data));
    let mut got = Vec::new();
    let mut turn = 0usize;
    loop {
        turn += 1;
        let r = match turn % 7 {
            0 => outs.read_line(0, true, |l| l.to_vec()),
            3 => {
                outs.read_ahead(0);
                outs.read_chunk(0, 1 + turn % 5000, |b| b.to_vec())
            }
            _ => outs.read_chunk(0, [MAX_CHUNK, 1, 4096, 70_000, 65_535][turn % 5], |b| b.to_vec()),
        };
        match r.unwrap() {
            Got::Data(b) => got.extend_from_slice(&b),
            Got::Eof => break,
            Got::WouldBlock => std::thread::sleep(std::time::Duration::from_micros(200)),
            Got::Dropped(n) => panic!("{n} bytes dropped"),
        }
    }
    writer.join().unwrap();
    assert!(outs.streams[0].borrow().as_ref().unwrap().grown, "the pipe was grown: bulk reads were taken");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
}
