//! How close captions come to the texts that describe the same models:
//! corpus BLEU-4, ROUGE-L and CAD-word recall.
//!
//! Stage in the flow: `cadloop caption --eval metadata.jsonl` captions a
//! captions dataset's images (made by `cadloop captions-dataset`) and scores
//! them here, before and after `captioner/finetune.py`.
//!
//! Both sides are cut into the same words first ([`words`]): lower case,
//! runs of letters and digits, everything else a separator. BLEU-4 is
//! computed over the whole set as sacrebleu's `corpus_bleu` computes it on
//! those words (`tokenize="none"`, its default `exp` smoothing, 0–100), so
//! the figure can be checked against it. ROUGE-L is the F1 of the longest
//! common word subsequence, averaged over images. CAD-word recall is the share
//! of the shape words in the texts ([`CAD_WORDS`]) that the captions also say.

use std::collections::{BTreeSet, HashMap};

/// The shape words of CAD-word recall: each form a text may use, with the
/// word it counts as (`holes` and `hole` are one word; `cylindrical` says
/// `cylinder`).
pub const CAD_WORDS: &[(&str, &str)] = &[
    ("hole", "hole"),
    ("holes", "hole"),
    ("bore", "hole"),
    ("bores", "hole"),
    ("slot", "slot"),
    ("slots", "slot"),
    ("slotted", "slot"),
    ("cylinder", "cylinder"),
    ("cylinders", "cylinder"),
    ("cylindrical", "cylinder"),
    ("cube", "cube"),
    ("cubes", "cube"),
    ("cubic", "cube"),
    ("block", "block"),
    ("blocks", "block"),
    ("box", "box"),
    ("boxes", "box"),
    ("plate", "plate"),
    ("plates", "plate"),
    ("bracket", "bracket"),
    ("brackets", "bracket"),
    ("fillet", "fillet"),
    ("fillets", "fillet"),
    ("filleted", "fillet"),
    ("rounded", "fillet"),
    ("chamfer", "chamfer"),
    ("chamfers", "chamfer"),
    ("chamfered", "chamfer"),
    ("flange", "flange"),
    ("flanges", "flange"),
    ("shaft", "shaft"),
    ("shafts", "shaft"),
    ("rod", "rod"),
    ("rods", "rod"),
    ("pin", "pin"),
    ("pins", "pin"),
    ("gear", "gear"),
    ("gears", "gear"),
    ("tube", "tube"),
    ("tubes", "tube"),
    ("tubular", "tube"),
    ("pipe", "pipe"),
    ("pipes", "pipe"),
    ("ring", "ring"),
    ("rings", "ring"),
    ("washer", "washer"),
    ("washers", "washer"),
    ("disc", "disc"),
    ("discs", "disc"),
    ("disk", "disc"),
    ("disks", "disc"),
    ("sphere", "sphere"),
    ("spheres", "sphere"),
    ("spherical", "sphere"),
    ("cone", "cone"),
    ("cones", "cone"),
    ("conical", "cone"),
    ("torus", "torus"),
    ("prism", "prism"),
    ("prisms", "prism"),
    ("pyramid", "pyramid"),
    ("wedge", "wedge"),
    ("wedges", "wedge"),
    ("boss", "boss"),
    ("bosses", "boss"),
    ("rib", "rib"),
    ("ribs", "rib"),
    ("groove", "groove"),
    ("grooves", "groove"),
    ("notch", "notch"),
    ("notches", "notch"),
    ("pocket", "pocket"),
    ("pockets", "pocket"),
    ("cutout", "cutout"),
    ("cutouts", "cutout"),
    ("step", "step"),
    ("steps", "step"),
    ("stepped", "step"),
    ("counterbore", "counterbore"),
    ("counterbored", "counterbore"),
    ("countersink", "countersink"),
    ("countersunk", "countersink"),
    ("thread", "thread"),
    ("threads", "thread"),
    ("threaded", "thread"),
    ("hexagon", "hexagon"),
    ("hexagonal", "hexagon"),
    ("hex", "hexagon"),
    ("tab", "tab"),
    ("tabs", "tab"),
    ("wall", "wall"),
    ("walls", "wall"),
    ("frame", "frame"),
    ("frames", "frame"),
    ("beam", "beam"),
    ("beams", "beam"),
    ("spring", "spring"),
    ("springs", "spring"),
    ("bolt", "bolt"),
    ("bolts", "bolt"),
    ("nut", "nut"),
    ("nuts", "nut"),
    ("screw", "screw"),
    ("screws", "screw"),
    ("spacer", "spacer"),
    ("spacers", "spacer"),
    ("bushing", "bushing"),
    ("bushings", "bushing"),
    ("hub", "hub"),
    ("knob", "knob"),
    ("knobs", "knob"),
    ("handle", "handle"),
    ("handles", "handle"),
    ("arc", "arc"),
    ("arcs", "arc"),
    ("circle", "circle"),
    ("circles", "circle"),
    ("circular", "circle"),
    ("round", "circle"),
    ("rectangle", "rectangle"),
    ("rectangles", "rectangle"),
    ("rectangular", "rectangle"),
    ("square", "square"),
    ("squares", "square"),
    ("triangle", "triangle"),
    ("triangular", "triangle"),
    ("cup", "cup"),
    ("bowl", "bowl"),
    ("tray", "tray"),
    ("lid", "lid"),
    ("hinge", "hinge"),
    ("clip", "clip"),
    ("hook", "hook"),
    ("star", "star"),
    ("cross", "cross"),
];

/// A text's words: lower case, runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Corpus BLEU-4 of captions against one reference each, 0–100, as sacrebleu's
/// `corpus_bleu(captions, [references], tokenize="none")` gives it on the
/// space-joined [`words`]: clipped n-gram counts summed over the corpus,
/// 0 when nothing matches, the `exp` smoothing of n-gram orders with no
/// match, the brevity penalty from the summed lengths.
pub fn corpus_bleu(pairs: &[(Vec<String>, Vec<String>)]) -> f64 {
    let mut correct = [0u64; 4];
    let mut total = [0u64; 4];
    let (mut sys_len, mut ref_len) = (0u64, 0u64);
    for (caption, reference) in pairs {
        sys_len += caption.len() as u64;
        ref_len += reference.len() as u64;
        for n in 1..=4 {
            let hyp = ngrams(caption, n);
            let refs = ngrams(reference, n);
            total[n - 1] += hyp.values().sum::<u64>();
            correct[n - 1] += hyp
                .iter()
                .map(|(gram, &count)| count.min(refs.get(gram).copied().unwrap_or(0)))
                .sum::<u64>();
        }
    }
    // No n-gram of any order matched: 0, whatever the smoothing would say.
    if correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; 4];
    let mut smooth = 1.0;
    for n in 0..4 {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let brevity = if sys_len >= ref_len {
        1.0
    } else if sys_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    };
    // sacrebleu's log of 0 is a huge negative number: any empty order gives 0.
    if precisions.iter().any(|&p| p <= 0.0) {
        return 0.0;
    }
    brevity * (precisions.iter().map(|p| p.ln()).sum::<f64>() / 4.0).exp()
}

fn ngrams(words: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut counts = HashMap::new();
    if words.len() >= n {
        for gram in words.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-L F1 of one caption against its reference: the longest common
/// subsequence of words over the caption's length (precision) and the
/// reference's (recall). 0 when either is empty.
pub fn rouge_l(caption: &[String], reference: &[String]) -> f64 {
    if caption.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let mut row = vec![0usize; reference.len() + 1];
    for word in caption {
        let mut diagonal = 0;
        for (j, other) in reference.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if word == other {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[reference.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let precision = lcs / caption.len() as f64;
    let recall = lcs / reference.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The shape words a text says, each once, in their counted form.
pub fn cad_words(words: &[String]) -> BTreeSet<&'static str> {
    words
        .iter()
        .filter_map(|w| {
            CAD_WORDS
                .iter()
                .find(|(form, _)| form == w)
                .map(|(_, word)| *word)
        })
        .collect()
}

/// The scores of a set of captions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub images: usize,
    /// Corpus BLEU-4, 0–100.
    pub bleu4: f64,
    /// Mean ROUGE-L F1, 0–1.
    pub rouge_l: f64,
    /// Shape words in the texts that the captions also say, over the texts'
    /// shape words (per image, summed); `None` when the texts have none.
    pub cad_recall: Option<f64>,
    /// The same matches over the captions' shape words; `None` when the
    /// captions have none.
    pub cad_precision: Option<f64>,
    pub cad_words_matched: usize,
    pub cad_words_in_texts: usize,
    pub cad_words_in_captions: usize,
}

/// Scores captions against their texts, pair by pair.
pub fn score<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Scores {
    let pairs: Vec<(Vec<String>, Vec<String>)> = pairs
        .into_iter()
        .map(|(caption, text)| (words(caption), words(text)))
        .collect();
    let (mut matched, mut in_texts, mut in_captions) = (0, 0, 0);
    for (caption, text) in &pairs {
        let said = cad_words(caption);
        let wanted = cad_words(text);
        matched += wanted.intersection(&said).count();
        in_texts += wanted.len();
        in_captions += said.len();
    }
    let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
    let rouge = pairs.iter().map(|(c, t)| rouge_l(c, t)).sum::<f64>();
    Scores {
        images: pairs.len(),
        bleu4: corpus_bleu(&pairs),
        rouge_l: if pairs.is_empty() {
            0.0
        } else {
            rouge / pairs.len() as f64
        },
        cad_recall: share(matched, in_texts),
        cad_precision: share(matched, in_captions),
        cad_words_matched: matched,
        cad_words_in_texts: in_texts,
        cad_words_in_captions: in_captions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text)
    }

    #[test]
    fn words_are_lower_case_runs_of_letters_and_digits() {
        assert_eq!(
            w("A 40×20 mm Block, with a 6-mm hole."),
            ["a", "40", "20", "mm", "block", "with", "a", "6", "mm", "hole"]
        );
    }

    #[test]
    fn identical_texts_score_full_marks() {
        let text = "a rectangular plate with four holes in the corners";
        let s = score([(text, text)]);
        assert!((s.bleu4 - 100.0).abs() < 1e-9, "{}", s.bleu4);
        assert!((s.rouge_l - 1.0).abs() < 1e-12);
        assert_eq!(s.cad_recall, Some(1.0));
        assert_eq!(s.cad_words_in_texts, 3); // rectangle, plate, hole
    }

    #[test]
    fn bleu_matches_a_count_worked_by_hand() {
        // caption: the cat sat on the mat (6 words), reference: the cat is on the mat (6)
        // 1-grams: the×2, cat, on, mat match: 5/6; 2-grams: the cat, on the, the mat: 3/5;
        // 3-grams: on the mat: 1/4; 4-grams: 0/3 -> exp smoothing 100/(2·3).
        let pairs = [(w("the cat sat on the mat"), w("the cat is on the mat"))];
        let expected =
            ((100.0f64 * 5.0 / 6.0).ln() + 60f64.ln() + 25f64.ln() + (100.0f64 / 6.0).ln()) / 4.0;
        assert!((corpus_bleu(&pairs) - expected.exp()).abs() < 1e-9);
        // A short caption pays the brevity penalty exp(1 - 6/3).
        // Three words have no 4-gram: sacrebleu leaves that order at 0, so BLEU is 0.
        let short = [(w("the cat is"), w("the cat is on the mat"))];
        assert_eq!(corpus_bleu(&short), 0.0);
        // Nothing in common: 0, not the smoothed orders' product.
        let apart = [(w("one two three four five"), w("six seven eight nine"))];
        assert_eq!(corpus_bleu(&apart), 0.0);
        let short = [(w("the cat is on"), w("the cat is on the mat"))];
        let expected = (1.0f64 - 6.0 / 4.0).exp() * 100.0;
        assert!((corpus_bleu(&short) - expected).abs() < 1e-9);
    }

    #[test]
    fn rouge_l_is_the_f1_of_the_longest_common_subsequence() {
        // LCS of "a b c d e" and "a c e f" is "a c e": P = 3/5, R = 3/4.
        let f = rouge_l(&w("a b c d e"), &w("a c e f"));
        let (p, r) = (0.6, 0.75);
        assert!((f - 2.0 * p * r / (p + r)).abs() < 1e-12);
        assert_eq!(rouge_l(&w("x y"), &w("a b")), 0.0);
        assert_eq!(rouge_l(&[], &w("a b")), 0.0);
    }

    #[test]
    fn cad_words_count_each_shape_once_in_any_form() {
        let s = score([
            (
                "a cylinder with holes",
                "a cylindrical part with two holes and a fillet",
            ),
            ("a white object", "a plain thing"),
        ]);
        // texts say cylinder, hole, fillet; captions say cylinder, hole.
        assert_eq!(
            (
                s.cad_words_matched,
                s.cad_words_in_texts,
                s.cad_words_in_captions
            ),
            (2, 3, 2)
        );
        assert_eq!(s.cad_recall, Some(2.0 / 3.0));
        assert_eq!(s.cad_precision, Some(1.0));
        let none = score([("a thing", "an object")]);
        assert_eq!((none.cad_recall, none.cad_precision), (None, None));
    }
}
