"""Tiny randomly initialised diffusers pipelines built from config (no download) for the adapters' CPU tests.
Sizes follow diffusers' own fast-test components; the text encoders and tokenizers are built in memory."""
from __future__ import annotations

import functools

import torch


def word_tokenizer(words: str = "a robot dancing cat dog the on in speaks rain roof tin of man says hi by sea", cls=None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    cls = cls or PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<bos>": 2, "<unk>": 3}
    for w in words.split():
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return cls(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", bos_token="<bos>",
                                   unk_token="<unk>")


def tiny_ltx2():
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(0)
    te = Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=1, head_dim=8, max_position_embeddings=64, sliding_window=16),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14), mm_tokens_per_image=4)).eval()
    hidden = te.config.text_config.hidden_size
    torch.manual_seed(0)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2,
        audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2, qk_norm="rms_norm_across_heads",
        caption_channels=hidden, rope_double_precision=False, rope_type="split")
    connectors = LTX2TextConnectors(
        caption_channels=hidden, text_proj_in_factor=te.config.text_config.num_hidden_layers + 1,
        video_connector_num_attention_heads=4, video_connector_attention_head_dim=8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=1, audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32, rope_theta=10000.0, rope_double_precision=False,
        causal_temporal_positioning=False, rope_type="split")
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,), decoder_block_out_channels=(8,),
        layers_per_block=(1,), decoder_layers_per_block=(1, 1), spatio_temporal_scaling=(True,),
        decoder_spatio_temporal_scaling=(True,), decoder_inject_noise=(False, False), downsample_type=("spatial",),
        upsample_residual=(False,), upsample_factor=(1,), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False)
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, in_channels=2,
        resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=8)
    vocoder = LTX2Vocoder(
        in_channels=audio_vae.config.output_channels * audio_vae.config.mel_bins, hidden_channels=32, out_channels=2,
        upsample_kernel_sizes=[4, 4], upsample_factors=[2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1, output_sampling_rate=16000)
    return LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae, text_encoder=te,
                        tokenizer=word_tokenizer(), connectors=connectors, transformer=transformer, vocoder=vocoder)


@functools.lru_cache(maxsize=1)
def _wan_parts():
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=2)).eval()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32)
    return vae, text_encoder, transformer


def _wan_with(scheduler):
    from diffusers import WanPipeline

    vae, text_encoder, transformer = _wan_parts()
    return WanPipeline(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                       tokenizer=word_tokenizer(), transformer_2=None)


def tiny_wan():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return _wan_with(FlowMatchEulerDiscreteScheduler(shift=7.0))


def tiny_wan_unipc():
    """The scheduler class Wan2.1's published Diffusers checkpoints ship (flow sigmas, key ``flow_shift``)."""
    from diffusers import UniPCMultistepScheduler

    return _wan_with(UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=1.0))


def tiny_wan_dpm():
    """DPM-Solver++ with flow sigmas, the other multistep scheduler diffusers documents for Wan (``flow_shift``)."""
    from diffusers import DPMSolverMultistepScheduler

    return _wan_with(DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                 flow_shift=1.0))


def tiny_wan_unipc_without_flow_sigmas():
    """A UniPC that ignores ``flow_shift`` (no flow sigmas): a configured shift must be refused, not recorded."""
    from diffusers import UniPCMultistepScheduler

    return _wan_with(UniPCMultistepScheduler())


def tiny_ltx2_dynamic():
    """LTX-2 with a dynamically shifting FlowMatchEuler scheduler (resolution-dependent shift), as LTX publishes."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = tiny_ltx2()
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                     base_image_seq_len=1024, max_image_seq_len=4096)
    return pipe


def tiny_audioldm2():
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
        DDIMScheduler,
    )
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2Model,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4,
                                         out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                         up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                         cross_attention_dim=([None, 16, 32], [None, 16, 32]))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=1, out_channels=1,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4)
    torch.manual_seed(0)
    clap = ClapModel(ClapConfig(
        text_config=ClapTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=16, intermediate_size=37,
                                   layer_norm_eps=1e-05, num_attention_heads=2, num_hidden_layers=2, pad_token_id=1,
                                   vocab_size=1000, projection_dim=16).to_dict(),
        audio_config=ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37,
                                     layer_norm_eps=1e-05, depths=[2, 2], num_attention_heads=[2, 2],
                                     num_hidden_layers=2, hidden_size=192, projection_dim=16, patch_size=2,
                                     patch_stride=2, patch_embed_input_channels=4).to_dict(),
        projection_dim=16))
    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=2))
    torch.manual_seed(0)
    lm = GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=1000, n_ctx=99, n_positions=99))
    lm.config.max_new_tokens = 8
    torch.manual_seed(0)
    projection = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16,
                                                    upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4],
                                                    resblock_kernel_sizes=[3, 7],
                                                    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
                                                    normalize_before=False))
    from transformers import RobertaTokenizerFast, T5TokenizerFast

    tok = word_tokenizer(cls=RobertaTokenizerFast)  # the pipeline branches on these tokenizer classes
    tok.model_max_length = 77
    tok2 = word_tokenizer(cls=T5TokenizerFast)
    tok2.model_max_length = 77
    pipe = AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=t5, projection_model=projection,
                             language_model=lm, tokenizer=tok, tokenizer_2=tok2, feature_extractor=ClapFeatureExtractor(),
                             unet=unet, scheduler=scheduler, vocoder=vocoder)
    for module in pipe.components.values():  # inference mode, as from_pretrained leaves them (no dropout)
        if isinstance(module, torch.nn.Module):
            module.eval()
    return pipe


def brightness_v2a():
    """A video-to-audio stand-in with the audio stages' ``make`` signature (not MMAudio): a 440 Hz tone whose
    loudness follows each frame's brightness, so a test can tell that the stage saw the video it was given."""
    import os

    import numpy as np

    from mova_eval import media

    def make(video_path, duration_s, prompt, seed):
        if os.environ.get("BRIGHTNESS_V2A_FAIL"):
            raise RuntimeError("injected audio-stage failure")
        clip = media.decode(video_path, audio=False)
        sr = 16000
        n = int(round(duration_s * sr))
        level = clip.video.reshape(clip.video.shape[0], -1).mean(axis=1) / 255.0
        env = np.repeat(level, int(np.ceil(n / len(level))))[:n]
        t = np.arange(n) / sr
        return (0.5 * env * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr

    return make
