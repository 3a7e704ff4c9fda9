//! Which cooperative-matrix tile an adapter offers the f16 kernels, and the WGSL that names it.
//!
//! Every cooperative kernel (`shaders/matmul_coop.wgsl`, `shaders/matmul_coop_staged.wgsl`) is
//! written in tiles of side `T` on subgroups of `SG` invocations, which the host prepends with
//! the tile types' aliases ([`constants`]). Two shapes are in use:
//! - [`SHAPE_16`]: 16x16x16 f16 x f16 → f32 on subgroups of exactly 32: NVIDIA's (the H200), the
//!   tensor cores the step runs on;
//! - [`SHAPE_8`]: 8x8x8 on subgroups of exactly 8: all Mesa's lavapipe offers (26.x, 256-bit
//!   vectors). The same kernels run there with every length halved, so their indexing,
//!   clamping, staging and fused epilogues are held to the CPU twin on a CPU
//!   (`.ci/coop_lavapipe.sh`); the arithmetic ceilings are 16x16 only.
//!
//! Every kernel also comes in three [`LoadWidth`]s: its tile loads (`coopLoad`) read `f16`
//! elements, `vec4<f16>` elements (8 bytes), or 16-byte elements of 8 halves, with indices and
//! strides counted in them. A cooperative load's SPIR-V pointer is typed by that element, so the
//! driver knows the wider loads 8- or 16-byte aligned and may issue a quarter or an eighth of
//! the load instructions. NVIDIA's own cooperative-matrix sample (`vk_cooperative_matrix_perf`)
//! loads its f16 tiles through 16-byte `uvec4` elements, which SPIR-V allows (the pointer's
//! element need not be the matrix's component type) but naga does not: it types the loaded
//! matrix by the pointer's scalar, and its matrices must be of floats. So the 16-byte kernels
//! are written with `vec4<f32>` elements and `f32` A and B tiles, and their SPIR-V is retyped
//! before the driver sees it: the A and B matrix types' component becomes f16 (see
//! [`super::retype`]), which makes every tile load an f16 load through a 16-byte element and
//! every multiply-add an f16 one. They run where the device offers wgpu's
//! `PASSTHROUGH_SHADERS`.

/// Square f16 x f16 → f32 tiles of side `tile` on subgroups of exactly `subgroup` invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoopShape {
    pub tile: u32,
    pub subgroup: u32,
}

/// 16x16 tiles on subgroups of 32.
pub const SHAPE_16: CoopShape = CoopShape { tile: 16, subgroup: 32 };
/// 8x8 tiles on subgroups of 8.
pub const SHAPE_8: CoopShape = CoopShape { tile: 8, subgroup: 8 };

/// The element a kernel's cooperative tile loads read (the WGSL alias `Half`, `HW` halves each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadWidth {
    /// `f16`: the form the H200 measured on 2026-12-04.
    Halves,
    /// `vec4<f16>`: indices and strides in units of 4 halves (every tile origin and stride, the
    /// staged kernel's padded rows included, is a multiple of 8 halves).
    Vec4,
    /// 8 halves, 16 bytes: `vec4<f32>` in the WGSL, with `f32` A and B tiles that the SPIR-V
    /// retype makes f16 ([`super::retype`]); indices and strides in units of 8 halves (tile
    /// sides of 8 and 16 are multiples of 8). Needs `PASSTHROUGH_SHADERS`.
    Vec8,
}

impl LoadWidth {
    /// Every width, the measured one first.
    pub const ALL: [LoadWidth; 3] = [LoadWidth::Halves, LoadWidth::Vec4, LoadWidth::Vec8];

    /// `halves`, `vec4` or `vec8`: the width's name in reports and `BATCHSCOPE_COOP_LOADS`.
    pub fn name(self) -> &'static str {
        match self {
            LoadWidth::Halves => "halves",
            LoadWidth::Vec4 => "vec4",
            LoadWidth::Vec8 => "vec8",
        }
    }

    /// The width named `name` ([`LoadWidth::name`]).
    pub fn parse(name: &str) -> Option<LoadWidth> {
        LoadWidth::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Halves per element.
    pub fn halves(self) -> u32 {
        match self {
            LoadWidth::Halves => 1,
            LoadWidth::Vec4 => 4,
            LoadWidth::Vec8 => 8,
        }
    }

    /// The WGSL type of one element.
    pub fn wgsl(self) -> &'static str {
        match self {
            LoadWidth::Halves => "f16",
            LoadWidth::Vec4 => "vec4<f16>",
            LoadWidth::Vec8 => "vec4<f32>",
        }
    }

    /// The WGSL scalar of the A and B tiles: `f32` where the SPIR-V is retyped to f16.
    fn tile_scalar(self) -> &'static str {
        match self {
            LoadWidth::Vec8 => "f32",
            LoadWidth::Halves | LoadWidth::Vec4 => "f16",
        }
    }

    /// Whether the module's SPIR-V has its A and B tiles retyped to f16 ([`super::retype`]) and
    /// goes to the driver as a passthrough module.
    pub fn retyped(self) -> bool {
        self == LoadWidth::Vec8
    }

    /// The device features the width needs beyond [`features`].
    pub fn features(self) -> wgpu::Features {
        match self.retyped() {
            true => wgpu::Features::PASSTHROUGH_SHADERS,
            false => wgpu::Features::empty(),
        }
    }
}

/// The shapes the kernels are written for, preferred first.
pub const SHAPES: [CoopShape; 2] = [SHAPE_16, SHAPE_8];

/// The device features every cooperative kernel needs.
pub fn features() -> wgpu::Features {
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
}

/// Whether `props` hold `side`x`side`x`side`, f16 x f16 → f32.
pub fn has_f16_square(props: &[wgpu::CooperativeMatrixProperties], side: u32) -> bool {
    props.iter().any(|p| {
        (p.m_size, p.n_size, p.k_size) == (side, side, side)
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    })
}

/// The first of [`SHAPES`] that `offered` features, `props` and subgroup sizes `(min, max)`
/// admit, or why none does (one line, naming what is missing).
pub fn shape_of(
    offered: wgpu::Features,
    props: &[wgpu::CooperativeMatrixProperties],
    subgroups: (u32, u32),
) -> Result<CoopShape, String> {
    let missing = features() - offered;
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter_names().map(|(n, _)| n).collect();
        return Err(format!("the adapter lacks {}", names.join(" | ")));
    }
    if let Some(s) = SHAPES
        .into_iter()
        .find(|s| has_f16_square(props, s.tile) && subgroups == (s.subgroup, s.subgroup))
    {
        return Ok(s);
    }
    if !SHAPES.iter().any(|s| has_f16_square(props, s.tile)) {
        return Err("no 16x16x16 (or 8x8x8) f16 x f16 -> f32 cooperative matrix configuration".into());
    }
    Err(format!(
        "subgroup size {}..{} is not exactly 32 (16x16 tiles) or 8 (8x8 tiles)",
        subgroups.0, subgroups.1
    ))
}

/// The shape `adapter` offers the kernels, or why none.
pub fn adapter_shape(adapter: &wgpu::Adapter) -> Result<CoopShape, String> {
    let info = adapter.get_info();
    shape_of(
        adapter.features(),
        &adapter.cooperative_matrix_properties(),
        (info.subgroup_min_size, info.subgroup_max_size),
    )
}

/// The WGSL every cooperative module starts with: the tile types, the two lengths and the
/// element its tile loads read (`Half`, of `HW` halves).
pub fn constants(shape: CoopShape, width: LoadWidth) -> String {
    let (t, sg) = (shape.tile, shape.subgroup);
    let retyped = match width.retyped() {
        true => {
            "// TileA and TileB are f16 tiles: their SPIR-V is retyped (src/backend/gpu/retype.rs)\n"
        }
        false => "",
    };
    format!(
        "// ---- cooperative tiles {t}x{t} on subgroups of {sg}, {name} loads \
         (src/backend/gpu/coop_shape.rs) ----\n{retyped}\
         alias TileA = coop_mat{t}x{t}<{ab}, A>;\nalias TileB = coop_mat{t}x{t}<{ab}, B>;\n\
         alias Acc = coop_mat{t}x{t}<f32, C>;\nconst T: u32 = {t}u;\nconst SG: u32 = {sg}u;\n\
         alias Half = {elem};\nconst HW: u32 = {hw}u;\n",
        name = width.name(),
        ab = width.tile_scalar(),
        elem = width.wgsl(),
        hw = width.halves(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(side: u32) -> wgpu::CooperativeMatrixProperties {
        wgpu::CooperativeMatrixProperties {
            m_size: side,
            n_size: side,
            k_size: side,
            ab_type: wgpu::CooperativeScalarType::F16,
            cr_type: wgpu::CooperativeScalarType::F32,
            saturating_accumulation: false,
        }
    }

    #[test]
    fn the_first_admitted_shape_wins_and_refusals_say_why() {
        let all = features();
        let (p16, p8) = (prop(16), prop(8));
        assert_eq!(shape_of(all, &[p8, p16], (32, 32)), Ok(SHAPE_16), "NVIDIA");
        assert_eq!(shape_of(all, &[p8], (8, 8)), Ok(SHAPE_8), "Mesa 26's lavapipe");
        assert_eq!(shape_of(all, &[p16, p8], (8, 8)), Ok(SHAPE_8));
        let why = shape_of(all, &[p16], (16, 64)).unwrap_err();
        assert!(why.contains("16..64 is not exactly 32"), "{why}");
        let why = shape_of(all, &[], (32, 32)).unwrap_err();
        assert!(why.contains("no 16x16x16 (or 8x8x8)"), "{why}");
        let why = shape_of(wgpu::Features::SHADER_F16, &[p16], (32, 32)).unwrap_err();
        assert!(why.contains("lacks") && why.contains("SUBGROUP"), "{why}");
    }

    #[test]
    fn constants_name_the_tile_types() {
        let c = constants(SHAPE_8, LoadWidth::Halves);
        assert!(c.contains("alias TileA = coop_mat8x8<f16, A>;") && c.contains("const SG: u32 = 8u;"));
        assert!(c.contains("alias Half = f16;") && c.contains("const HW: u32 = 1u;"));
        let c = constants(SHAPE_16, LoadWidth::Vec4);
        assert!(c.contains("alias Acc = coop_mat16x16<f32, C>;"));
        assert!(c.contains("alias Half = vec4<f16>;") && c.contains("const HW: u32 = 4u;"));
        let c = constants(SHAPE_16, LoadWidth::Vec8);
        assert!(c.contains("alias TileA = coop_mat16x16<f32, A>;") && c.contains("retype.rs"));
        assert!(c.contains("alias Half = vec4<f32>;") && c.contains("const HW: u32 = 8u;"));
        assert_eq!(LoadWidth::ALL.map(|w| LoadWidth::parse(w.name())), LoadWidth::ALL.map(Some));
    }
}
