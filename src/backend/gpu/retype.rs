//! SPIR-V for the cooperative kernels with 16-byte tile loads
//! ([`super::coop_shape::LoadWidth::Vec8`]).
//!
//! NVIDIA's cooperative-matrix sample loads f16 tiles through `uvec4` elements: 16-byte
//! accesses that the driver can turn into its widest shared- and global-memory loads. SPIR-V
//! allows it (`OpCooperativeMatrixLoadKHR` reads through a pointer to any scalar or vector; the
//! stride counts its elements), but naga types a loaded matrix by its pointer's scalar and
//! wants matrices of floats, so WGSL cannot say "an f16 tile from 16-byte elements". The
//! `Vec8` modules therefore say "an f32 tile from `vec4<f32>` elements": TileA and TileB are
//! `coop_matTxT<f32, A|B>` in the WGSL, every index and stride counted in 8 halves. This module
//! compiles each entry point of such a module with naga as wgpu's Vulkan backend would (one entry
//! point per module, a trusted module's checks unless asked), then [`retype_ab_to_f16`]
//! changes one operand of each A and B matrix type declaration, its component type, from f32 to
//! f16. Every tile load then reads an f16 tile through a 16-byte pointer and every multiply-add
//! is f16 x f16 + f32: the kernel the WGSL means. The accumulators (use C) stay f32. The words go
//! to the driver through wgpu's `create_shader_module_passthrough` (`PASSTHROUGH_SHADERS`).
//!
//! Tested: tests/shaders_validate.rs validates the retyped modules with spirv-val (which knows
//! SPV_KHR_cooperative_matrix), and the cooperative parity tests run them against the CPU twin
//! wherever an adapter has cooperative matrices (Mesa 26's lavapipe in CI, `.ci/coop_lavapipe.sh`).

/// SPIR-V opcodes read or written here.
const OP_CAPABILITY: u32 = 17;
const OP_TYPE_INT: u32 = 21;
const OP_TYPE_FLOAT: u32 = 22;
const OP_CONSTANT: u32 = 43;
const OP_TYPE_COOPERATIVE_MATRIX_KHR: u32 = 4456;
/// `Float16`, the capability an f16 type needs.
const CAPABILITY_FLOAT16: u32 = 9;
/// `MatrixAKHR`, `MatrixBKHR`: the uses whose component is retyped.
const USE_A: u32 = 0;
const USE_B: u32 = 1;
/// Words of the module header before the first instruction.
const HEADER: usize = 5;

/// How a module is compiled.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// wgpu's runtime checks (index clamps, loop counters, storage clamps) as
    /// `BATCHSCOPE_SHADER_CHECKS=1` asks; otherwise a trusted module's choices.
    pub checks: bool,
    /// Zero-initialise workgroup memory at the workgroup's start (WGSL's rule; off where the
    /// kernels write every element they read first, as for the other modules' pipelines).
    pub zero_init_workgroup: bool,
}

/// One entry point's module: its SPIR-V words and its workgroup size.
pub struct Compiled {
    pub words: Vec<u32>,
    pub workgroup_size: [u32; 3],
}

/// The SPIR-V of entry point `entry` of WGSL `source` (a `LoadWidth::Vec8` module) with its A
/// and B tiles retyped to f16. One entry point per module, as wgpu's Vulkan backend writes every
/// module; integer-division guards kept. `Err` says why, in one line.
pub fn compile(source: &str, entry: &str, opts: Options) -> Result<Compiled, String> {
    use naga::back::spv;
    use naga::proc::BoundsCheckPolicy::{Restrict, Unchecked};
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    let workgroup_size = module
        .entry_points
        .iter()
        .find(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
        .map(|ep| ep.workgroup_size)
        .ok_or_else(|| format!("no compute entry point `{entry}`"))?;
    // wgpu's choices: index clamps with the checks, none in a trusted module; storage clamps with
    // the checks (wgpu drops them only where robustBufferAccess2 bounds storage accesses).
    let policy = if opts.checks { Restrict } else { Unchecked };
    let options = spv::Options {
        // SPIR-V 1.5: Vulkan 1.2 and later, which every driver with VK_KHR_cooperative_matrix
        // that batchscope runs on is (wgpu writes 1.6 for Vulkan 1.3; nothing here differs).
        lang_version: (1, 5),
        flags: spv::WriterFlags::empty(),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: policy,
            buffer: policy,
            image_load: policy,
            binding_array: Unchecked,
        },
        zero_initialize_workgroup_memory: match opts.zero_init_workgroup {
            true => spv::ZeroInitializeWorkgroupMemoryMode::Polyfill,
            false => spv::ZeroInitializeWorkgroupMemoryMode::None,
        },
        force_loop_bounding: opts.checks,
        ..spv::Options::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    let mut words =
        spv::write_vec(&module, &info, &options, Some(&pipeline)).map_err(|e| e.to_string())?;
    retype_ab_to_f16(&mut words)?;
    Ok(Compiled { words, workgroup_size })
}

/// One instruction: where it starts in the words, its opcode and its word count.
#[derive(Clone, Copy)]
struct Instruction {
    at: usize,
    op: u32,
    len: usize,
}

/// The module's instructions, or why the words are no SPIR-V module.
fn instructions(words: &[u32]) -> Result<Vec<Instruction>, String> {
    if words.len() < HEADER || words[0] != 0x0723_0203 {
        return Err("not a SPIR-V module (magic number)".into());
    }
    let mut out = Vec::new();
    let mut at = HEADER;
    while at < words.len() {
        let (len, op) = ((words[at] >> 16) as usize, words[at] & 0xffff);
        if len == 0 || at + len > words.len() {
            return Err(format!("SPIR-V instruction at word {at} has a bad length {len}"));
        }
        out.push(Instruction { at, op, len });
        at += len;
    }
    Ok(out)
}

/// Retype every cooperative matrix type of use A or B whose component is f32 to f16, declaring
/// the f16 type (and its capability) if the module has none and moving its declaration before
/// the first cooperative matrix type if it comes later. Returns how many types changed; a module
/// with none is an error (it was not written for the retype).
pub fn retype_ab_to_f16(words: &mut Vec<u32>) -> Result<usize, String> {
    let instrs = instructions(words)?;
    let float_of = |width: u32| {
        instrs.iter().find(|i| i.op == OP_TYPE_FLOAT && i.len == 3 && words[i.at + 2] == width)
    };
    let f32_id = float_of(32).map(|i| words[i.at + 1]).ok_or("the module declares no f32 type")?;
    let f16 = float_of(16).copied();
    let u32_types: Vec<u32> = instrs
        .iter()
        .filter(|i| i.op == OP_TYPE_INT && i.len == 4 && words[i.at + 2] == 32)
        .map(|i| words[i.at + 1])
        .collect();
    let constant = |id: u32| {
        instrs
            .iter()
            .find(|i| {
                i.op == OP_CONSTANT
                    && i.len == 4
                    && words[i.at + 2] == id
                    && u32_types.contains(&words[i.at + 1])
            })
            .map(|i| words[i.at + 3])
    };
    // The A and B types of f32 (a use that is no constant is an error: it cannot be told), and
    // no f16 type of the same scope, shape and use already (it would be declared twice).
    let coop: Vec<&Instruction> =
        instrs.iter().filter(|i| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR && i.len == 7).collect();
    let values = |i: &Instruction| (3..7).map(|k| constant(words[i.at + k])).collect::<Vec<_>>();
    let mut targets = Vec::new();
    for i in coop.iter().filter(|i| words[i.at + 2] == f32_id) {
        match constant(words[i.at + 6]) {
            Some(USE_A | USE_B) => targets.push(i.at),
            Some(_) => {}
            None => {
                return Err(format!(
                    "cooperative matrix type %{}: its use is no constant",
                    words[i.at + 1]
                ))
            }
        }
    }
    if let Some(f16_id) = f16.map(|i| words[i.at + 1]) {
        let taken: Vec<Vec<Option<u32>>> =
            coop.iter().filter(|i| words[i.at + 2] == f16_id).map(|i| values(i)).collect();
        let twice = coop.iter().filter(|i| targets.contains(&i.at)).any(|i| taken.contains(&values(i)));
        if twice {
            return Err(
                "the module already declares an f16 tile of a retyped tile's shape and use".into()
            );
        }
    }
    let first_coop = instrs
        .iter()
        .find(|i| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR)
        .map(|i| i.at)
        .ok_or("the module declares no cooperative matrix type")?;
    if targets.is_empty() {
        return Err("the module declares no f32 A or B cooperative matrix type to retype".into());
    }
    // The f16 type's id, its declaration placed before `first_coop`.
    let (f16_id, shift) = match f16 {
        Some(i) if i.at < first_coop => (words[i.at + 1], None),
        Some(i) => {
            let decl: Vec<u32> = words.drain(i.at..i.at + i.len).collect();
            words.splice(first_coop..first_coop, decl.iter().copied());
            (decl[1], Some((first_coop, i.at, i.len)))
        }
        None => {
            let id = words[3];
            words[3] += 1; // the id bound
            words.splice(first_coop..first_coop, [(3 << 16) | OP_TYPE_FLOAT, id, 16]);
            (id, Some((first_coop, usize::MAX, 3)))
        }
    };
    for &at in &targets {
        // Instructions in [first_coop, moved-from) moved right by the inserted declaration.
        let at = match shift {
            Some((insert, from, len)) if at >= insert && at < from => at + len,
            _ => at,
        };
        words[at + 2] = f16_id;
    }
    if f16.is_none() {
        ensure_capability(words, CAPABILITY_FLOAT16)?;
    }
    Ok(targets.len())
}

/// Declare `capability` after the module's first capability unless it is declared.
fn ensure_capability(words: &mut Vec<u32>, capability: u32) -> Result<(), String> {
    let instrs = instructions(words)?;
    let caps: Vec<&Instruction> = instrs.iter().filter(|i| i.op == OP_CAPABILITY).collect();
    if caps.iter().any(|i| words[i.at + 1] == capability) {
        return Ok(());
    }
    let after = caps.first().map(|i| i.at + i.len).ok_or("the module declares no capability")?;
    words.splice(after..after, [(2 << 16) | OP_CAPABILITY, capability]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with f32 A and B tiles read from `vec4<f32>` elements, `extra` added.
    fn module(extra: &str) -> String {
        format!(
            "enable f16;\nenable wgpu_cooperative_matrix;\n{extra}\n\
             @group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;\n\
             @group(0) @binding(1) var<storage, read_write> c: array<f32>;\n\
             @compute @workgroup_size(32)\nfn main() {{\n\
             let x = coopLoadT<coop_mat16x16<f32, A>>(&a[0], 2u);\n\
             let y = coopLoadT<coop_mat16x16<f32, B>>(&a[4], 2u);\n\
             var acc = coop_mat16x16<f32, C>();\nacc = coopMultiplyAdd(x, y, acc);\n\
             let dst = &c[0];\ncoopStoreT(acc, dst, 16u);\n}}\n"
        )
    }

    /// The component type of each cooperative matrix type, by use, and the f16 type's id.
    fn coop_components(words: &[u32]) -> (Vec<(u32, u32)>, Option<u32>) {
        let instrs = instructions(words).expect("a module");
        let f16 = instrs
            .iter()
            .find(|i| i.op == OP_TYPE_FLOAT && words[i.at + 2] == 16)
            .map(|i| words[i.at + 1]);
        let coop = instrs
            .iter()
            .filter(|i| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR)
            .map(|i| (words[i.at + 2], words[i.at + 6]))
            .collect();
        (coop, f16)
    }

    #[test]
    fn a_and_b_tiles_become_f16_and_accumulators_stay_f32() {
        // With and without an f16 type declared by the WGSL (`h` makes naga declare one).
        for extra in
            ["", "const H: f16 = 1.0h;\n@group(0) @binding(2) var<storage, read_write> h: array<f16>;"]
        {
            let src = module(extra);
            let opts = Options { checks: false, zero_init_workgroup: true };
            let compiled = compile(&src, "main", opts).expect("compiles");
            let words = &compiled.words;
            let (coop, f16) = coop_components(words);
            let f16 = f16.expect("an f16 type after the retype");
            assert_eq!(coop.len(), 3, "A, B and C types: {coop:?}");
            let instrs = instructions(words).unwrap();
            let pos = |id: u32| {
                instrs.iter().position(|i| i.op != OP_CAPABILITY && i.len > 1 && words[i.at + 1] == id)
            };
            let first_coop = instrs.iter().position(|i| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR).unwrap();
            assert!(pos(f16).unwrap() < first_coop, "f16 declared before its first use");
            let retyped = coop.iter().filter(|(c, _)| *c == f16).count();
            assert_eq!(retyped, 2, "{coop:?}");
            assert!(instrs
                .iter()
                .any(|i| i.op == OP_CAPABILITY && words[i.at + 1] == CAPABILITY_FLOAT16));
            assert_eq!(compiled.workgroup_size, [32, 1, 1]);
        }
    }

    /// A hand-made module: header (bound 20), Shader and (optionally) Float16 capabilities,
    /// u32 and f32 types, the constants 0, 1, 2, 3, 16, coop types of use A, B and C, then an f16
    /// type declared after them (id 19) where `late_f16`.
    fn hand_made(late_f16: bool, float16_cap: bool) -> Vec<u32> {
        let inst = |op: u32, operands: &[u32]| {
            let mut v = vec![((operands.len() as u32 + 1) << 16) | op];
            v.extend_from_slice(operands);
            v
        };
        let mut w = vec![0x0723_0203, 0x0001_0500, 0, 20, 0];
        w.extend(inst(OP_CAPABILITY, &[1]));
        if float16_cap {
            w.extend(inst(OP_CAPABILITY, &[CAPABILITY_FLOAT16]));
        }
        w.extend(inst(OP_TYPE_INT, &[1, 32, 0]));
        w.extend(inst(OP_TYPE_FLOAT, &[2, 32]));
        for (id, value) in [(3, 0), (4, 1), (5, 2), (6, 3), (7, 16)] {
            w.extend(inst(OP_CONSTANT, &[1, id, value]));
        }
        for (id, usage) in [(10, 3), (11, 4), (12, 5)] {
            // OpTypeCooperativeMatrixKHR %id %f32 scope(3: subgroup) rows cols use
            w.extend(inst(OP_TYPE_COOPERATIVE_MATRIX_KHR, &[id, 2, 6, 7, 7, usage]));
        }
        if late_f16 {
            w.extend(inst(OP_TYPE_FLOAT, &[19, 16]));
        }
        w
    }

    #[test]
    fn the_f16_type_is_declared_or_moved_before_the_tiles_that_use_it() {
        for (late_f16, cap) in [(true, true), (false, false)] {
            let mut w = hand_made(late_f16, cap);
            assert_eq!(retype_ab_to_f16(&mut w), Ok(2));
            let instrs = instructions(&w).expect("still a module");
            let f16 =
                instrs.iter().position(|i| i.op == OP_TYPE_FLOAT && w[i.at + 2] == 16).expect("f16");
            let f16_id = w[instrs[f16].at + 1];
            assert_eq!(f16_id, if late_f16 { 19 } else { 20 }, "moved, or a new id");
            assert_eq!(w[3], if late_f16 { 20 } else { 21 }, "the id bound");
            let coop: Vec<(usize, u32, u32)> = instrs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR)
                .map(|(n, i)| (n, w[i.at + 1], w[i.at + 2]))
                .collect();
            assert!(coop.iter().all(|&(n, ..)| n > f16), "f16 declared first");
            assert_eq!(
                coop.iter().map(|&(_, id, c)| (id, c)).collect::<Vec<_>>(),
                [(10, f16_id), (11, f16_id), (12, 2)]
            );
            let caps = instrs
                .iter()
                .filter(|i| i.op == OP_CAPABILITY && w[i.at + 1] == CAPABILITY_FLOAT16)
                .count();
            assert_eq!(caps, 1, "Float16 declared once");
            assert_eq!(instrs.iter().map(|i| i.len).sum::<usize>() + HEADER, w.len());
        }
    }

    #[test]
    fn modules_without_f32_tiles_are_refused() {
        let src = module("").replace("<f32, A>", "<f16, A>").replace("<f32, B>", "<f16, B>");
        let src = src.replace("array<vec4<f32>>", "array<vec4<f16>>");
        let opts = Options { checks: false, zero_init_workgroup: false };
        let why = compile(&src, "main", opts).err().expect("nothing to retype");
        assert!(why.contains("no f32 A or B cooperative matrix type"), "{why}");
        assert!(compile(&module(""), "other", opts).err().expect("no such entry").contains("`other`"));
        assert!(retype_ab_to_f16(&mut vec![1, 2, 3]).unwrap_err().contains("not a SPIR-V module"));
    }

    #[test]
    fn tiles_that_cannot_be_told_or_would_be_declared_twice_are_refused() {
        // A use that is no constant.
        let mut w = hand_made(false, true);
        let at = instructions(&w)
            .unwrap()
            .iter()
            .find(|i| i.op == OP_TYPE_COOPERATIVE_MATRIX_KHR)
            .unwrap()
            .at;
        w[at + 6] = 99;
        let why = retype_ab_to_f16(&mut w).unwrap_err();
        assert!(why.contains("%10: its use is no constant"), "{why}");
        // An f16 A tile of the same shape declared already: after the retype it would be twice.
        let mut w = hand_made(true, true);
        w.extend([(7 << 16) | OP_TYPE_COOPERATIVE_MATRIX_KHR, 13, 19, 6, 7, 7, 3]);
        let why = retype_ab_to_f16(&mut w).unwrap_err();
        assert!(why.contains("already declares an f16 tile"), "{why}");
    }
}
