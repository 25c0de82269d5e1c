use super::*;

fn cuboid(lo: [f32; 3], hi: [f32; 3]) -> Mesh {
    Mesh::cuboid(lo, hi)
}

fn settings(protocol: Protocol, align: Align) -> MetricSettings {
    MetricSettings {
        align,
        ..MetricSettings::of(protocol)
    }
}

fn cadloop(align: Align) -> MetricSettings {
    settings(Protocol::Cadloop, align)
}

fn get(s: &Scores, m: Metric) -> f64 {
    s.get(m).unwrap_or_else(|| panic!("no {m:?} in {s:?}"))
}

#[test]
fn a_cube_against_itself_scores_exactly_zero_and_one_under_cadloop() {
    let cube = cuboid([0.0; 3], [10.0; 3]);
    for s in [cadloop(Align::None), cadloop(Align::Icp)] {
        let sc = score(&cube, &cube, &s).unwrap();
        assert!(
            get(&sc, Metric::Pcd) < 1e-9 && get(&sc, Metric::Hausdorff) < 1e-9,
            "{sc:?}"
        );
        assert_eq!(
            (get(&sc, Metric::Iogt), get(&sc, Metric::Iou)),
            (1.0, 1.0),
            "{sc:?}"
        );
    }
    // Placement and size do not matter: each mesh is normalised on its own.
    let moved = cuboid([100.0, -5.0, 3.0], [103.0, -2.0, 6.0]);
    let sc = score(&moved, &cube, &cadloop(Align::None)).unwrap();
    assert!(
        get(&sc, Metric::Pcd) < 1e-6 && get(&sc, Metric::Iou) == 1.0,
        "{sc:?}"
    );
}

#[test]
fn a_box_stretched_by_a_known_factor_under_cadloop() {
    // Normalised, a 2 × 1 × 1 box is 1 × ½ × ½ and the cube 1 × 1 × 1.
    let cube = cuboid([0.0; 3], [1.0; 3]);
    let long = cuboid([0.0; 3], [2.0, 1.0, 1.0]);
    let sc = score(&long, &cube, &cadloop(Align::None)).unwrap();
    assert!((get(&sc, Metric::Iogt) - 0.25).abs() < 1e-9, "{sc:?}");
    assert!((get(&sc, Metric::Iou) - 0.25).abs() < 0.02, "{sc:?}");
    // The farthest point of the cube from the flat box is a corner at
    // (½, ½) across from the box's edge at (¼, ¼): √2·¼.
    let h = get(&sc, Metric::Hausdorff);
    assert!((h - 2f64.sqrt() / 4.0).abs() < 0.03, "{sc:?}");
    assert!(
        get(&sc, Metric::Pcd) > 0.05 && get(&sc, Metric::Pcd) < h,
        "{sc:?}"
    );
}

/// Whether `sc` scores what two samplings of one surface score (`floor`).
fn at_noise_floor(protocol: Protocol, sc: &Scores, floor: &Scores) -> bool {
    protocol.metrics().iter().all(|&m| {
        let (got, noise) = (get(sc, m), get(floor, m));
        let spread = match m {
            Metric::Iogt | Metric::Iou => 0.05,
            Metric::Cd => 0.5 * noise.max(0.5),
            _ => 0.5 * noise.max(0.01),
        };
        (got - noise).abs() <= spread
    })
}

#[test]
fn offset_and_scaled_copies_score_the_noise_floor_where_the_protocol_normalises() {
    // cadprompt and cadloop normalise each mesh on its own: a copy moved by
    // a known offset, or scaled by 10, is the same shape, and scores what
    // two samplings of one surface score (the noise floor), not 0 where
    // the two samplings are independent.
    let reference = cuboid([0.0; 3], [3.0, 2.0, 1.0]);
    let offset = cuboid([5.0, -7.0, 11.0], [8.0, -5.0, 12.0]);
    let scaled = cuboid([0.0; 3], [30.0, 20.0, 10.0]);
    for protocol in [Protocol::Cadprompt, Protocol::Text2cad, Protocol::Cadloop] {
        let s = MetricSettings::of(protocol);
        let floor = baselines(&reference, &s).unwrap().noise;
        for copy in [&offset, &scaled] {
            let sc = score(copy, &reference, &s).unwrap();
            if protocol == Protocol::Cadloop {
                // One seed for both meshes: the same shape samples to the same points.
                assert!(get(&sc, Metric::Pcd) < 1e-6, "{sc:?}");
                continue;
            }
            // text2cad keeps DeepCAD's frame: a move counts, while both
            // meshes, beyond ±2, are divided by their largest coordinate,
            // which undoes the scale about the origin.
            let expected = protocol != Protocol::Text2cad || std::ptr::eq(copy, &scaled);
            assert_eq!(
                at_noise_floor(protocol, &sc, &floor),
                expected,
                "{protocol:?}: {sc:?} vs floor {floor:?}"
            );
        }
        // Two samplings with different seeds never coincide.
        let first = protocol.metrics()[0];
        assert!(get(&floor, first) > 0.0, "{protocol:?}: {floor:?}");
    }
}

#[test]
fn text2cad_keeps_deepcads_frame_and_divides_only_beyond_two() {
    // DeepCAD's models lie within ±0.75: kept as they are.
    let inside = vec![[0.75, -0.5, 0.0], [-0.2, 0.1, 1.9]];
    assert_eq!(deepcad_frame(inside.clone()), inside);
    // Out of bounds: every coordinate divided by the largest in size.
    let outside = deepcad_frame(vec![[40.0, -5.0, 0.0], [10.0, 20.0, -80.0]]);
    assert_eq!(outside, vec![[0.5, -0.0625, 0.0], [0.125, 0.25, -1.0]]);
    // So a result 0.1 off in DeepCAD's units scores the offset's square,
    // twice (both directions), × 10³: 20.
    let reference = cuboid([0.0; 3], [0.75, 0.5, 0.25]);
    let moved = cuboid([0.1, 0.0, 0.0], [0.85, 0.5, 0.25]);
    let s = MetricSettings {
        samples: 20_000,
        ..MetricSettings::of(Protocol::Text2cad)
    };
    let cd = get(&score(&moved, &reference, &s).unwrap(), Metric::Cd);
    // The faces across the move are 0.1 apart; the rest of the surface
    // slides along itself, so the CD lies below 2 × 0.01 × 10³.
    assert!(cd > 2.0 && cd < 20.0, "{cd}");
}

#[test]
fn protocol_versions_say_what_changed_and_old_settings_read_as_uniform() {
    assert_eq!(Protocol::Cadprompt.version(), 2);
    assert!(Protocol::Cadprompt
        .changes_since(1)
        .unwrap()
        .contains("Poisson disk"));
    assert_eq!(Protocol::Cadprompt.changes_since(2), None);
    assert_eq!(Protocol::Cadloop.changes_since(1), None);
    assert_eq!(
        MetricSettings::of(Protocol::Cadprompt).sampling,
        Sampling::Poisson
    );
    // A settings record from before the field: what cadloop then drew.
    let old: MetricSettings = serde_json::from_str(
        r#"{"protocol":"cadprompt","samples":1000,"seed":0,"align":"icp","voxels":64}"#,
    )
    .unwrap();
    assert_eq!(old.sampling, Sampling::Uniform);
    assert!(
        old.modified(),
        "uniform points are not the protocol's own now"
    );
}

#[test]
fn cadprompt_distances_are_one_way_from_the_reference_and_not_squared() {
    let truth = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]];
    let made = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]];
    let sc = cadprompt_points(&Cloud::new(truth.to_vec()), &made);
    // Reference → result: 0 and 1, mean ½; result → reference: 0 and 0.
    assert_eq!(get(&sc, Metric::Pcd), 0.5);
    assert_eq!(get(&sc, Metric::Hausdorff), 1.0);
    let swapped = cadprompt_points(&Cloud::new(made.to_vec()), &truth);
    assert_eq!(get(&swapped, Metric::Pcd), 0.0, "one way only");
}

#[test]
fn cadprompts_iogt_is_the_published_coordinate_statistic() {
    // Paired by order; marks where a coordinate exceeds −0.6.
    let truth = [[0.0, 0.0, -0.9], [0.5, -0.7, 0.1]];
    let made = [[0.0, -0.8, 0.0], [0.5, 0.0, -1.0]];
    // Truth marks: (x, y), (x, z) = 4; the result shares x of both and nothing else = 2.
    assert_eq!(published_iogt(&truth, &made), 0.5);
    assert_eq!(published_iogt(&truth, &truth), 1.0);
    assert_eq!(published_iogt(&[[-1.0; 3]], &[[0.0; 3]]), 0.0);
}

#[test]
fn the_unit_sphere_normalisation_centres_the_mean_and_reaches_one() {
    let points = unit_sphere(vec![[10.0, 0.0, 0.0], [14.0, 0.0, 0.0], [12.0, 3.0, 0.0]]);
    let mean = [0, 1, 2].map(|k| points.iter().map(|p| p[k]).sum::<f64>() / 3.0);
    assert!(mean.iter().all(|m| m.abs() < 1e-12), "{mean:?}");
    let far = points.iter().map(|p| norm(*p)).fold(0.0, f64::max);
    assert!((far - 1.0).abs() < 1e-12);
}

#[test]
fn text2cads_chamfer_sums_the_two_mean_squared_distances() {
    let truth = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]];
    let made = [[0.0, 0.1, 0.0]];
    // Reference → result: 0.01 and 1.01, mean 0.51; result → reference: 0.01.
    assert!((chamfer(&Cloud::new(truth.to_vec()), &made) - 0.52).abs() < 1e-12);
}

#[test]
fn failures_score_as_each_protocol_says() {
    let f = Protocol::Cadprompt.failed();
    assert_eq!((get(&f, Metric::Pcd), get(&f, Metric::Iogt)), (1.73, 0.0));
    assert!(
        Protocol::Text2cad.failed().0.is_empty(),
        "left out, not scored"
    );
    let f = Protocol::Cadloop.failed();
    assert_eq!((get(&f, Metric::Pcd), get(&f, Metric::Iou)), (SQRT_3, 0.0));
    assert!(Protocol::Cadprompt.failures_count() && !Protocol::Text2cad.failures_count());
}

#[test]
fn cadprompts_icp_from_the_identity_undoes_a_small_turn_but_not_a_quarter_turn() {
    let reference = cuboid([0.0; 3], [3.0, 2.0, 1.0]);
    let turn = |mesh: &Mesh, degrees: f64| {
        let (s, c) = degrees.to_radians().sin_cos();
        Mesh {
            vertices: mesh
                .vertices
                .iter()
                .map(|v| {
                    let (x, y) = (f64::from(v[0]), f64::from(v[1]));
                    [(c * x - s * y) as f32, (s * x + c * y) as f32, v[2]]
                })
                .collect(),
            ..mesh.clone()
        }
    };
    let s = MetricSettings::of(Protocol::Cadprompt);
    let floor = get(&baselines(&reference, &s).unwrap().noise, Metric::Pcd);
    let small = turn(&reference, 8.0);
    let aligned = get(&score(&small, &reference, &s).unwrap(), Metric::Pcd);
    let plain = get(
        &score(
            &small,
            &reference,
            &settings(Protocol::Cadprompt, Align::None),
        )
        .unwrap(),
        Metric::Pcd,
    );
    assert!(aligned < plain, "{aligned} {plain}");
    assert!(aligned < floor * 1.5, "{aligned} vs floor {floor}");
    let quarter = turn(&reference, 90.0);
    let stuck = get(&score(&quarter, &reference, &s).unwrap(), Metric::Pcd);
    assert!(
        stuck > floor * 2.0,
        "a single ICP from the identity keeps the quarter turn: {stuck} vs {floor}"
    );
}

#[test]
fn iogt_of_two_offset_boxes() {
    let a = ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]);
    let b = ([0.5, 0.0, 0.0], [1.5, 1.0, 1.0]);
    assert!((iogt(b, a) - 0.5).abs() < 1e-12);
    let c = ([0.5, 0.5, 0.5], [1.5, 1.5, 1.5]);
    assert!((iogt(c, a) - 0.125).abs() < 1e-12);
    assert_eq!(iogt(([2.0; 3], [3.0; 3]), a), 0.0);
}

#[test]
fn voxel_iou_of_nested_cubes_is_the_volume_ratio() {
    let outer = Shape::of(&cuboid([0.0; 3], [1.0; 3]), "a").unwrap();
    let inner = Shape::of(&cuboid([0.25; 3], [0.75; 3]), "b").unwrap();
    let iou = voxel::voxel_iou(&inner, &outer, 64);
    assert!((iou - 0.125).abs() < 0.01, "{iou}");
    assert!((voxel::voxel_iou(&outer, &outer, 32) - 1.0).abs() < 1e-12);
}

#[test]
fn sampling_is_deterministic_area_weighted_and_on_the_surface() {
    let shape = Shape::of(&cuboid([0.0; 3], [4.0, 1.0, 1.0]), "a").unwrap();
    let a = sample_surface(&shape, 2000, 7);
    assert_eq!(a, sample_surface(&shape, 2000, 7));
    assert_ne!(a, sample_surface(&shape, 2000, 8));
    let on_surface = |p: &Point| {
        let d = [
            p[0].min(4.0 - p[0]),
            p[1].min(1.0 - p[1]),
            p[2].min(1.0 - p[2]),
        ];
        d.iter().cloned().fold(f64::INFINITY, f64::min) < 1e-9
    };
    assert!(a.iter().all(on_surface));
    // The two 1 × 1 ends hold 2 of the 18 units of area.
    let ends = a
        .iter()
        .filter(|p| p[0] < 1e-9 || p[0] > 4.0 - 1e-9)
        .count();
    let share = ends as f64 / a.len() as f64;
    assert!((share - 2.0 / 18.0).abs() < 0.02, "{share}");
}

#[test]
fn cadloops_icp_undoes_a_quarter_turn() {
    let reference = cuboid([0.0; 3], [3.0, 2.0, 1.0]);
    // The same box modelled along other axes.
    let turned = cuboid([0.0; 3], [1.0, 3.0, 2.0]);
    let plain = score(&turned, &reference, &cadloop(Align::None)).unwrap();
    let aligned = score(&turned, &reference, &cadloop(Align::Icp)).unwrap();
    assert!(
        get(&plain, Metric::Pcd) > 0.1 && get(&plain, Metric::Iou) < 0.5,
        "{plain:?}"
    );
    assert!(get(&aligned, Metric::Pcd) < 0.035, "{aligned:?}");
    assert!(
        get(&aligned, Metric::Iou) > 0.97 && get(&aligned, Metric::Iogt) > 0.99,
        "{aligned:?}"
    );
}

#[test]
fn absolute_errors_show_what_normalising_hides() {
    let reference = cuboid([0.0; 3], [30.0, 20.0, 10.0]);
    // Ten times too large (a unit slip), and modelled about other axes.
    let large = cuboid([0.0; 3], [100.0, 300.0, 200.0]);
    let a = absolute(&large, &reference).unwrap();
    assert_eq!(a.size_error, [270.0, 180.0, 90.0]);
    assert!((a.volume_ratio.unwrap() - 1000.0).abs() < 1e-6);
    let same = absolute(&reference, &reference).unwrap();
    assert_eq!((same.size_error, same.volume_ratio), ([0.0; 3], Some(1.0)));
    // An open mesh has no volume to compare.
    let mut open = reference.clone();
    open.triangles.pop();
    assert_eq!(absolute(&open, &reference).unwrap().volume_ratio, None);
}

#[test]
fn the_baselines_score_worse_than_the_noise_floor_and_the_box_beats_the_cube_on_a_flat_part() {
    // A plate with a small boss on top: its box is nearly the plate, a cube is not.
    let mut plate = cuboid([0.0; 3], [40.0, 30.0, 2.0]);
    let boss = cuboid([10.0, 10.0, 2.0], [15.0, 15.0, 5.0]);
    let base = plate.vertices.len() as u32;
    plate.vertices.extend(&boss.vertices);
    plate
        .triangles
        .extend(boss.triangles.iter().map(|t| t.map(|i| i + base)));
    for protocol in [Protocol::Cadprompt, Protocol::Text2cad, Protocol::Cadloop] {
        let s = MetricSettings::of(protocol);
        let b = baselines(&plate, &s).unwrap();
        let m = protocol.metrics()[0];
        let (cube, boxed, noise) = (get(&b.cube, m), get(&b.bbox, m), get(&b.noise, m));
        assert!(
            noise < boxed + 1e-9 && boxed < cube,
            "{protocol:?}: noise {noise}, box {boxed}, cube {cube}"
        );
    }
}
