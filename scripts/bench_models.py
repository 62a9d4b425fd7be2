"""The networks scripts/benchmark.py times in Keras and PyTorch: the same layers, shapes and
optimizer as cnn_tf's model of the same config, so the frameworks do the same work per image.

    lenet        conv5x5 32, pool, conv5x5 64, pool, fc 1024, dropout, fc 10
    three_conv   conv3x3 32, pool, conv3x3 64, pool, conv3x3 128, pool, fc 128, dropout, fc 10
    resnet       the pre-activation ResNet of cnn_tf/nets/resnet.py at the config's depth and width
                 (BN without gamma in Keras as in cnn_tf; PyTorch's BatchNorm2d always has one)

Batch norm follows every conv where the config has --batch_norm (the ResNet's own layout otherwise).
"""
import os
import time

IMAGE_SHAPE, NUM_CLASSES = (28, 28, 1), 10


def _blocks_per_stage(hp):
    return (hp.resnet_depth - 2) // 6


def keras_model(hp, precision):
    import keras
    from keras import layers

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "mixed_bfloat16" else "float32")
    l2 = keras.regularizers.l2(hp.weight_decay / 2) if hp.weight_decay else None  # ours: wd * sum(w^2) / 2
    inputs = keras.Input(IMAGE_SHAPE)
    net = layers.Rescaling(1 / 255)(inputs)
    if hp.model == "resnet":
        net = _keras_resnet(net, hp, l2)
    else:
        net = _keras_plain(net, hp, l2)
    outputs = layers.Dense(NUM_CLASSES, dtype="float32")(net)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=_keras_optimizer(hp), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _keras_optimizer(hp):
    import keras

    if hp.optimizer == "nesterov":
        return keras.optimizers.SGD(hp.initial_learning_rate, momentum=hp.momentum, nesterov=True)
    return keras.optimizers.Adam(hp.initial_learning_rate)


def _keras_plain(net, hp, l2):
    from keras import layers

    def conv(net, filters, size):
        net = layers.Conv2D(filters, size, padding="same", use_bias=not hp.batch_norm, kernel_regularizer=l2)(net)
        if hp.batch_norm:
            net = layers.BatchNormalization(momentum=0.99)(net)
        return layers.ReLU()(net)

    if hp.model == "lenet":
        for filters in (32, 64):
            net = layers.MaxPooling2D(2)(conv(net, filters, 5))
        width = 1024
    else:
        for filters in (32, 64, 128):
            net = layers.MaxPooling2D(2, padding="same")(conv(net, filters, 3))
        width = 128
    net = layers.Dense(width, activation="relu", kernel_regularizer=l2)(layers.Flatten()(net))
    return layers.Dropout(1 - hp.keep_prob)(net)


def _keras_resnet(net, hp, l2):
    from keras import layers

    def conv(net, filters, size, stride=1):
        return layers.Conv2D(filters, size, stride, padding="same", use_bias=False, kernel_regularizer=l2)(net)

    def pre_activation(net):
        return layers.ReLU()(layers.BatchNormalization(momentum=0.99, epsilon=1e-3, scale=False)(net))

    w = hp.resnet_width
    net = conv(net, w, 3)
    for stage, channels in enumerate((w, 2 * w, 4 * w)):
        for block in range(_blocks_per_stage(hp)):
            stride = 2 if stage and not block else 1
            pre = pre_activation(net)
            shortcut = net if stride == 1 and net.shape[-1] == channels else conv(pre, channels, 1, stride)
            residual = conv(pre_activation(conv(pre, channels, 3, stride)), channels, 3)
            net = layers.Add()([shortcut, residual])
    return layers.GlobalAveragePooling2D()(pre_activation(net))


def torch_model(hp):
    from torch import nn

    if hp.model == "resnet":
        return _torch_resnet(hp)

    def conv(cin, cout, size):
        return [nn.Conv2d(cin, cout, size, padding=size // 2, bias=not hp.batch_norm),
                *([nn.BatchNorm2d(cout, momentum=0.01)] if hp.batch_norm else []), nn.ReLU()]

    if hp.model == "lenet":
        body = [*conv(1, 32, 5), nn.MaxPool2d(2), *conv(32, 64, 5), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(7 * 7 * 64, 1024), nn.ReLU()]
        width = 1024
    else:
        body = [*conv(1, 32, 3), nn.MaxPool2d(2, ceil_mode=True), *conv(32, 64, 3), nn.MaxPool2d(2, ceil_mode=True),
                *conv(64, 128, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(4 * 4 * 128, 128),
                nn.ReLU()]
        width = 128
    return nn.Sequential(*body, nn.Dropout(1 - hp.keep_prob), nn.Linear(width, NUM_CLASSES))


def _torch_resnet(hp):
    from torch import nn

    def pre_activation(channels):
        return nn.Sequential(nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01), nn.ReLU())

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.pre = pre_activation(cin)
            self.shortcut = (None if stride == 1 and cin == cout else
                             nn.Conv2d(cin, cout, 1, stride, bias=False))
            self.residual = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), pre_activation(cout),
                                          nn.Conv2d(cout, cout, 3, 1, 1, bias=False))

        def forward(self, x):
            pre = self.pre(x)
            return (x if self.shortcut is None else self.shortcut(pre)) + self.residual(pre)

    w = hp.resnet_width
    layers, cin = [nn.Conv2d(1, w, 3, 1, 1, bias=False)], w
    for stage, channels in enumerate((w, 2 * w, 4 * w)):
        for block in range(_blocks_per_stage(hp)):
            layers.append(Block(cin, channels, 2 if stage and not block else 1))
            cin = channels
    return nn.Sequential(*layers, pre_activation(cin), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, NUM_CLASSES))


def keras_rate(net, x, y, batch_size, warmup, steps):
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == warmup - 1:
                self.started = time.perf_counter()

        def on_train_end(self, logs=None):
            self.stopped = time.perf_counter()

    clock = Clock()
    n = (warmup + steps) * batch_size
    net.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
    return steps * batch_size / (clock.stopped - clock.started)


def torch_rate(net, hp, precision, x, y, batch_size, warmup, steps):
    import torch

    torch.set_num_threads(os.cpu_count())
    if hp.optimizer == "nesterov":
        optimizer = torch.optim.SGD(net.parameters(), lr=hp.initial_learning_rate, momentum=hp.momentum,
                                    nesterov=True, weight_decay=hp.weight_decay)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=hp.initial_learning_rate, weight_decay=hp.weight_decay)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW
    labels = torch.from_numpy(y)
    dtype = torch.bfloat16 if precision == "mixed_bfloat16" else None
    net.train()
    started = None
    for i in range(warmup + steps):
        if i == warmup:
            started = time.perf_counter()
        xb = images[i * batch_size:(i + 1) * batch_size].float() / 255
        yb = labels[i * batch_size:(i + 1) * batch_size]
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = net(xb)
            loss = torch.nn.functional.cross_entropy(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item(), (logits.argmax(1) == yb).float().mean().item()  # what every loop reports
    return steps * batch_size / (time.perf_counter() - started)
