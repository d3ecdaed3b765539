"""Qwen3.5 sees: how an image becomes tokens the language model reads.

    processor.py   picture -> pixel_values [N, C*Tp*P*P] and image_grid_thw [I, 3] (resize, normalise, patches)
    encoder.py     pixel_values -> image features [N / m^2, D] (patch embedding, ViT blocks, the merger)
    positions.py   the language model's three-component (t, h, w) positions, multimodal RoPE
    chat.py        load_processor: chat messages with images -> input_ids with one pad token per feature

Legend of the vision dimensions, used in every shape comment (with the language model's, minillm/__init__.py):
    N patches (of all images)     P patch size (pixels)     Tp temporal patch size (frames per patch)
    C colour channels (3)     Dv vision width     Hv vision heads     Dhv vision head dim (Dv / Hv)
    Fv vision MLP width     m spatial merge size (2: 2 x 2 patches become one token)     I images
    gh, gw an image's grid of patches (rows, columns)     Q position-table side (sqrt(num_position_embeddings))
"""
