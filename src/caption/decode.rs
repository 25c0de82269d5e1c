//! Decoding: greedy and beam search over the text decoder, step by step
//! with its key/value cache, as transformers' `generate` does for BLIP.

use std::borrow::Cow;

use ort::session::SessionInputValue;
use ort::value::DynValue;

use super::{output_err, run_err, tensor_f32, tensor_ids, CaptionError, Captioner};

/// How a model folder's decoder passes its key/value cache (the manifest's
/// format): format 2 has one tensor per layer `[B, h, T, d]`, with each
/// image's cross keys/values shared by its beams in the step graph; format 1
/// one stacked tensor `[L, B, h, T, d]` per kind, with a copy per beam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) per_layer: bool,
    pub(super) layers: usize,
}

impl Layout {
    /// The tensor names of one kind (`self_k`, `next_v`, …).
    pub(super) fn names(&self, kind: &str) -> Vec<String> {
        if self.per_layer {
            (0..self.layers).map(|i| format!("{kind}.{i}")).collect()
        } else {
            vec![kind.to_string()]
        }
    }

    /// The batch axis of a cache tensor.
    fn batch_axis(&self) -> usize {
        if self.per_layer {
            0
        } else {
            1
        }
    }
}

/// The decoder's key/value cache between steps, one tensor per layer
/// (format 2) or one stacked tensor (format 1) of each kind.
struct Cache {
    self_k: Vec<DynValue>,
    self_v: Vec<DynValue>,
    cross_k: Vec<DynValue>,
    cross_v: Vec<DynValue>,
}

/// Takes a cache kind's tensors (`self_k`, `next_v`, …) out of a graph's outputs.
fn take(
    out: &mut ort::session::SessionOutputs,
    layout: Layout,
    kind: &str,
    graph: &'static str,
) -> Result<Vec<DynValue>, CaptionError> {
    layout
        .names(kind)
        .iter()
        .map(|name| {
            out.remove(name.as_str()).ok_or_else(|| {
                output_err(graph, &format!("no {name} output; export the model again"))
            })
        })
        .collect()
}

/// Takes `order`'s rows of every tensor of a cache kind.
fn gather_all(
    values: &[DynValue],
    axis: usize,
    order: &[usize],
    graph: &'static str,
) -> Result<Vec<DynValue>, CaptionError> {
    values
        .iter()
        .map(|v| gather_axis(v, axis, order, graph))
        .collect()
}

/// Last-position logits, one row per sequence.
fn logits_rows(value: &DynValue, graph: &'static str) -> Result<Vec<Vec<f32>>, CaptionError> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| run_err(graph, e))?;
    let vocab = *shape
        .last()
        .ok_or_else(|| output_err(graph, "logits have no shape"))? as usize;
    Ok(data.chunks(vocab.max(1)).map(<[f32]>::to_vec).collect())
}

/// Takes the entries of `axis` in `order` (entries may repeat): the batch
/// axis is 0 for image embeddings and 1 for the `[L, B, …]` caches.
fn gather_axis(
    value: &DynValue,
    axis: usize,
    order: &[usize],
    graph: &'static str,
) -> Result<DynValue, CaptionError> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| run_err(graph, e))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * order.len() * inner);
    for o in 0..outer {
        for &b in order {
            let at = (o * dims[axis] + b) * inner;
            out.extend_from_slice(&data[at..at + inner]);
        }
    }
    let mut new_dims = dims;
    new_dims[axis] = order.len();
    Ok(tensor_f32(new_dims, out, graph)?.into_dyn())
}

/// transformers' repetition penalty: each distinct token already in the
/// sequence has its score divided by the penalty when positive, multiplied
/// when negative (once, however often it occurred).
fn apply_repetition_penalty(scores: &mut [f32], sequence: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = sequence.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for token in seen {
        if let Some(s) = scores.get_mut(token as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln() + max;
    row.iter().map(|&x| x - log_sum).collect()
}

/// Index of the largest value; the first one on ties, as torch.argmax.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// One decoding run's fixed settings.
pub(super) struct Search {
    pub(super) start: Vec<u32>,
    pub(super) max_length: usize,
    pub(super) beams: usize,
    pub(super) penalty: f32,
    pub(super) sep: u32,
    pub(super) pad: u32,
}

impl Search {
    /// Runs the first decoder pass over `rows` (all the same length).
    fn first(
        &self,
        model: &mut Captioner,
        rows: &[Vec<u32>],
        embeds: &DynValue,
    ) -> Result<(Vec<Vec<f32>>, Cache), CaptionError> {
        let ids = tensor_ids(rows, 0, "decoder_init")?;
        let layout = model.layout();
        let mut out = model
            .init
            .run(ort::inputs!["input_ids" => ids, "image_embeds" => embeds])
            .map_err(|e| run_err("decoder_init", e))?;
        let logits = logits_rows(&out["logits"], "decoder_init")?;
        if logits[0].len() != model.manifest.vocab_size {
            return Err(CaptionError::Output {
                graph: "decoder_init",
                problem: format!(
                    "the decoder scores {} tokens, the manifest says {}; export the model again",
                    logits[0].len(),
                    model.manifest.vocab_size
                ),
            });
        }
        let graph = "decoder_init";
        let cache = Cache {
            self_k: take(&mut out, layout, "self_k", graph)?,
            self_v: take(&mut out, layout, "self_v", graph)?,
            cross_k: take(&mut out, layout, "cross_k", graph)?,
            cross_v: take(&mut out, layout, "cross_v", graph)?,
        };
        Ok((logits, cache))
    }

    /// Feeds the last token of each row; returns the logits and the grown cache.
    fn next(
        &self,
        model: &mut Captioner,
        rows: &[Vec<u32>],
        cache: Cache,
    ) -> Result<(Vec<Vec<f32>>, Cache), CaptionError> {
        let ids = tensor_ids(rows, rows[0].len() - 1, "decoder_step")?;
        let layout = model.layout();
        let mut inputs: Vec<(Cow<str>, SessionInputValue)> = vec![("input_ids".into(), ids.into())];
        for (kind, values) in [
            ("self_k", &cache.self_k),
            ("self_v", &cache.self_v),
            ("cross_k", &cache.cross_k),
            ("cross_v", &cache.cross_v),
        ] {
            for (name, value) in layout.names(kind).into_iter().zip(values) {
                inputs.push((name.into(), value.into()));
            }
        }
        let mut out = model
            .step
            .run(inputs)
            .map_err(|e| run_err("decoder_step", e))?;
        let logits = logits_rows(&out["logits"], "decoder_step")?;
        let self_k = take(&mut out, layout, "next_k", "decoder_step")?;
        let self_v = take(&mut out, layout, "next_v", "decoder_step")?;
        drop(out);
        Ok((
            logits,
            Cache {
                self_k,
                self_v,
                cross_k: cache.cross_k,
                cross_v: cache.cross_v,
            },
        ))
    }

    pub(super) fn greedy(
        &self,
        model: &mut Captioner,
        embeds: DynValue,
        batch: usize,
    ) -> Result<Vec<(Vec<u32>, f32)>, CaptionError> {
        let mut rows = vec![self.start.clone(); batch];
        let mut done = vec![false; batch];
        let mut sums = vec![0f32; batch];
        let mut counts = vec![0usize; batch];
        let (mut logits, mut cache) = self.first(model, &rows, &embeds)?;
        loop {
            for (b, row) in rows.iter_mut().enumerate() {
                // A finished row still runs with the batch; it only grows padding.
                if done[b] {
                    row.push(self.pad);
                    continue;
                }
                let mut scores = logits[b].clone();
                apply_repetition_penalty(&mut scores, row, self.penalty);
                let token = argmax(&scores) as u32;
                sums[b] += log_softmax(&scores)[token as usize];
                counts[b] += 1;
                row.push(token);
                done[b] = token == self.sep;
            }
            if done.iter().all(|&d| d) || rows[0].len() >= self.max_length {
                break;
            }
            (logits, cache) = self.next(model, &rows, cache)?;
        }
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(b, row)| (trim(row, self.sep), sums[b] / counts[b].max(1) as f32))
            .collect())
    }

    /// transformers' beam search (length penalty 1, `early_stopping=False`).
    pub(super) fn beam(
        &self,
        model: &mut Captioner,
        embeds: DynValue,
        batch: usize,
    ) -> Result<Vec<(Vec<u32>, f32)>, CaptionError> {
        let k = self.beams;
        let mut images: Vec<Beams> = (0..batch).map(|_| Beams::new(&self.start, k)).collect();
        let (mut logits, mut cache) = self.first_per_image(model, &embeds, batch)?;
        let mut cur_len = self.start.len();
        loop {
            let mut order = Vec::with_capacity(batch * k);
            let mut all_stop = true;
            for (b, image) in images.iter_mut().enumerate() {
                let (stop, from) = image.advance(&logits[b * k..(b + 1) * k], self, cur_len);
                all_stop &= stop;
                order.extend(from.into_iter().map(|j| b * k + j));
                image.close_if_settled(k, cur_len + 1 - self.start.len());
            }
            cur_len += 1;
            if all_stop || !images.iter().any(|image| image.open) {
                break;
            }
            let axis = model.layout().batch_axis();
            cache = Cache {
                self_k: gather_all(&cache.self_k, axis, &order, "decoder_step")?,
                self_v: gather_all(&cache.self_v, axis, &order, "decoder_step")?,
                ..cache
            };
            let rows: Vec<Vec<u32>> = images
                .iter()
                .flat_map(|image| image.running.iter().map(|(seq, _)| seq.clone()))
                .collect();
            (logits, cache) = self.next(model, &rows, cache)?;
        }
        let prompt = self.start.len();
        Ok(images
            .into_iter()
            .map(|image| image.best(prompt, self.sep))
            .collect())
    }

    /// The first pass for beam search: all beams of an image start alike, so
    /// it runs once per image (its cross-attention keys/values are the costly
    /// part) and its self-attention cache is copied to each of the image's
    /// beams. The cross keys/values stay one per image where the step graph
    /// shares them between beams (format 2), else they are copied too.
    fn first_per_image(
        &self,
        model: &mut Captioner,
        embeds: &DynValue,
        batch: usize,
    ) -> Result<(Vec<Vec<f32>>, Cache), CaptionError> {
        let (first_logits, first) = self.first(model, &vec![self.start.clone(); batch], embeds)?;
        let expanded: Vec<usize> = (0..batch)
            .flat_map(|b| std::iter::repeat_n(b, self.beams))
            .collect();
        let logits = expanded.iter().map(|&b| first_logits[b].clone()).collect();
        let layout = model.layout();
        let axis = layout.batch_axis();
        let (cross_k, cross_v) = if layout.per_layer {
            (first.cross_k, first.cross_v)
        } else {
            (
                gather_all(&first.cross_k, axis, &expanded, "decoder_init")?,
                gather_all(&first.cross_v, axis, &expanded, "decoder_init")?,
            )
        };
        let cache = Cache {
            self_k: gather_all(&first.self_k, axis, &expanded, "decoder_init")?,
            self_v: gather_all(&first.self_v, axis, &expanded, "decoder_init")?,
            cross_k,
            cross_v,
        };
        Ok((logits, cache))
    }
}

/// One image's beams during beam search.
struct Beams {
    /// Each running beam's sequence and accumulated log-probability.
    running: Vec<(Vec<u32>, f32)>,
    /// Finished sequences scored per generated token, best first, at most k.
    finished: Vec<(Vec<u32>, f32)>,
    /// False once no running beam can beat the worst finished one.
    open: bool,
}

impl Beams {
    /// k beams of `start`; only the first counts until they differ.
    fn new(start: &[u32], k: usize) -> Beams {
        Beams {
            running: (0..k)
                .map(|j| (start.to_vec(), if j == 0 { 0.0 } else { -1e9 }))
                .collect(),
            finished: Vec::new(),
            open: true,
        }
    }

    /// Extends the beams by one token from `logits` (one row per beam) at
    /// length `cur_len`. Gives whether every top candidate stops, and which
    /// old beam each new one continues.
    fn advance(
        &mut self,
        logits: &[Vec<f32>],
        search: &Search,
        cur_len: usize,
    ) -> (bool, Vec<usize>) {
        let k = search.beams;
        let prompt = search.start.len();
        // The top 2k continuations over all beams and tokens.
        let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
        for (j, (seq, score)) in self.running.iter().enumerate() {
            let mut lp = log_softmax(&logits[j]);
            apply_repetition_penalty(&mut lp, seq, search.penalty);
            candidates.extend(
                lp.iter()
                    .enumerate()
                    .map(|(t, &p)| (p + score, j, t as u32)),
            );
        }
        candidates.sort_by(|a, c| c.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(c.1, c.2))));
        candidates.truncate(2 * k);
        let hits: Vec<bool> = candidates
            .iter()
            .map(|&(_, _, t)| t == search.sep || cur_len + 1 >= search.max_length)
            .collect();
        let all_stop = hits.iter().all(|&h| h);
        // Finished: the top-k candidates that stop, scored per generated token.
        if self.open {
            for (rank, (&(score, j, t), &hit)) in candidates.iter().zip(&hits).enumerate() {
                if hit && rank < k {
                    let mut seq = self.running[j].0.clone();
                    seq.push(t);
                    self.finished
                        .push((seq, score / (cur_len + 1 - prompt) as f32));
                }
            }
            self.finished.sort_by(|a, c| c.1.total_cmp(&a.1));
            self.finished.truncate(k);
        }
        // Running: the best k candidates that do not stop.
        let mut next: Vec<(f32, usize, u32)> = candidates
            .iter()
            .zip(&hits)
            .map(|(&(s, j, t), &hit)| (if hit { s - 1e9 } else { s }, j, t))
            .collect();
        next.sort_by(|a, c| c.0.total_cmp(&a.0));
        next.truncate(k);
        let previous = std::mem::take(&mut self.running);
        self.running = next
            .iter()
            .map(|&(s, j, t)| {
                let mut seq = previous[j].0.clone();
                seq.push(t);
                (seq, s)
            })
            .collect();
        (all_stop, next.iter().map(|&(_, j, _)| j).collect())
    }

    /// Closes the image once no running beam, `generated` tokens long, can
    /// beat its worst finished one.
    fn close_if_settled(&mut self, k: usize, generated: usize) {
        let best_running = self.running[0].1 / generated as f32;
        let worst_finished = if self.finished.len() == k {
            self.finished
                .iter()
                .map(|f| f.1)
                .fold(f32::INFINITY, f32::min)
        } else {
            -1e9
        };
        self.open &= best_running > worst_finished;
    }

    /// The best finished beam (its score already per generated token), else
    /// the best running one.
    fn best(self, prompt: usize, sep: u32) -> (Vec<u32>, f32) {
        let (seq, score) = self.finished.into_iter().next().unwrap_or_else(|| {
            let (seq, sum) = self.running.into_iter().next().unwrap_or_default();
            let generated = (seq.len() - prompt).max(1) as f32;
            (seq, sum / generated)
        });
        (trim(seq, sep), score)
    }
}

/// Cuts a sequence after its first `[SEP]`.
fn trim(mut ids: Vec<u32>, sep: u32) -> Vec<u32> {
    if let Some(at) = ids.iter().position(|&t| t == sep) {
        ids.truncate(at + 1);
    }
    ids
}
